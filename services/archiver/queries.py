"""Questions the history answers, for the API and the CLI.

Uptime and latency read the hourly rollups, so their cost depends on the
number of checks and hours, not on how often checks run. Windows are whole
UTC hours: "24 h" is the hour containing ``now - 24h`` up to ``now``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from services.archiver import histogram, rollups
from services.archiver.patterns import AlertFacts, Patterns, analyse
from services.archiver.rollups import hour_of

Level = Literal["check", "service", "tenant"]
ZERO = timedelta(0)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_GROUP = {
    "tenant": ("tenant",),
    "service": ("tenant", "service"),
    "check": ("tenant", "service", "check_name"),
}


@dataclass(frozen=True, slots=True)
class Uptime:
    tenant: str
    service: str | None
    check: str | None
    executions: int
    successes: int
    failures: int

    @property
    def percent(self) -> float | None:
        """Up over (up + down); 'unknown' results count for neither."""
        counted = self.successes + self.failures
        return 100.0 * self.successes / counted if counted else None


def _midnight(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


async def uptime(
    conn: AsyncConnection[Any],
    level: Level,
    window: timedelta,
    now: datetime,
    *,
    tenant: str | None = None,
    service: str | None = None,
) -> list[Uptime]:
    """Uptime per check, service or tenant over ``window`` before ``now``.

    Whole UTC days come from the daily rollups, the partial first and last day
    from the hourly ones: 30 days for 1,000 checks read ~30k + ~48k rows, not 720k.
    """
    await rollups.refresh(conn)
    keys = _GROUP[level]
    cols = ", ".join(keys)
    since = hour_of(now - window)
    first_day = _midnight(since) + (timedelta(days=1) if since != _midnight(since) else ZERO)
    today = _midnight(hour_of(now))
    filters = "".join(
        f" AND {name} = %({name})s" for name, v in (("tenant", tenant), ("service", service)) if v
    )
    counts = "executions, successes, failures"
    if first_day < today:
        parts = [
            f"SELECT {cols}, {counts} FROM check_rollups "
            f"WHERE hour >= %(since)s AND hour < %(first_day)s{filters}",
            f"SELECT {cols}, {counts} FROM check_rollups_daily "
            f"WHERE day >= %(first_day)s AND day < %(today)s{filters}",
            f"SELECT {cols}, {counts} FROM check_rollups "
            f"WHERE hour >= %(today)s AND hour <= %(now)s{filters}",
        ]
    else:
        parts = [
            f"SELECT {cols}, {counts} FROM check_rollups "
            f"WHERE hour >= %(since)s AND hour <= %(now)s{filters}"
        ]
    params = {
        "since": since,
        "first_day": first_day,
        "today": today,
        "now": now,
        "tenant": tenant,
        "service": service,
    }
    cur = await conn.execute(
        f"SELECT {cols}, sum(executions), sum(successes), sum(failures) FROM ("
        + " UNION ALL ".join(parts)
        + f") u GROUP BY {cols} ORDER BY {cols}",
        params,
        prepare=False,  # a prepared generic plan ignores the selective filters
    )
    out = []
    for row in await cur.fetchall():
        names = list(row[: len(keys)]) + [None] * (3 - len(keys))
        out.append(Uptime(names[0], names[1], names[2], *(int(v) for v in row[len(keys) :])))
    return out


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    at: datetime
    count: int
    mean_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


async def latency(
    conn: AsyncConnection[Any],
    tenant: str,
    service: str,
    check: str,
    since: datetime,
    until: datetime,
    step: timedelta = timedelta(hours=1),
) -> list[LatencyPoint]:
    """Latency percentiles of one check per ``step`` (a whole number of hours)."""
    await rollups.refresh(conn)
    cur = await conn.execute(
        "SELECT hour, executions, latency_sum, latency_min, latency_max, latency_buckets "
        "FROM check_rollups WHERE tenant = %s AND service = %s AND check_name = %s "
        "AND hour >= %s AND hour < %s ORDER BY hour",
        (tenant, service, check, hour_of(since), until),
    )
    groups: dict[datetime, list[tuple[Any, ...]]] = defaultdict(list)
    origin = hour_of(since)
    for row in await cur.fetchall():
        groups[origin + step * ((row[0] - origin) // step)].append(row)
    points = []
    for at, rows in sorted(groups.items()):
        count = sum(r[1] for r in rows)
        low, high = min(r[3] for r in rows), max(r[4] for r in rows)
        merged = histogram.merge(r[5] for r in rows)
        p50, p95, p99 = (histogram.quantile(merged, q, low, high) for q in (0.5, 0.95, 0.99))
        points.append(LatencyPoint(at, count, sum(r[2] for r in rows) / count, p50, p95, p99))
    return points


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    alert_id: int
    fingerprint: str
    rule: str
    tenant: str
    service: str
    title: str
    from_state: str | None
    to_state: str
    by: str
    note: str


async def timeline(
    conn: AsyncConnection[Any], since: datetime, until: datetime, *, tenant: str | None = None
) -> list[TimelineEntry]:
    """Every alert transition in ``[since, until)``, oldest first."""
    async with conn.cursor(row_factory=class_row(TimelineEntry)) as cur:
        await cur.execute(
            "SELECT t.at, a.id AS alert_id, a.fingerprint, a.rule, a.tenant, a.service, a.title, "
            "t.from_state, t.to_state, t.by, t.note FROM alert_transitions t "
            "JOIN alerts a ON a.id = t.alert_id WHERE t.at >= %s AND t.at < %s "
            "AND (%s::text IS NULL OR a.tenant = %s) ORDER BY t.at, t.id",
            (since, until, tenant, tenant),
        )
        return await cur.fetchall()


async def patterns(
    conn: AsyncConnection[Any], since: datetime, until: datetime, *, tenant: str | None = None
) -> Patterns:
    """Pattern analysis of the alerts that started in ``[since, until)``."""
    async with conn.cursor(row_factory=class_row(AlertFacts)) as cur:
        await cur.execute(
            "SELECT rule, fingerprint, started_at AT TIME ZONE 'UTC' AS started_at, "
            "acknowledged_at AT TIME ZONE 'UTC' AS acknowledged_at, "
            "resolved_at AT TIME ZONE 'UTC' AS resolved_at, state FROM alerts "
            "WHERE started_at >= %s AND started_at < %s AND (%s::text IS NULL OR tenant = %s)",
            (since, until, tenant, tenant),
        )
        return analyse(await cur.fetchall())
