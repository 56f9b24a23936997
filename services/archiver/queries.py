"""Questions the history answers, for the API and the CLI.

Uptime and latency read the hourly rollups, so their cost depends on the
number of checks and hours, not on how often checks run. Windows are whole
UTC hours: "24 h" is the hour containing ``now - 24h`` up to ``now``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
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


def uptime_query(
    level: Level,
    window: timedelta,
    now: datetime,
    *,
    tenant: str | None = None,
    service: str | None = None,
    param: str = "%({})s",
) -> tuple[str, dict[str, Any]]:
    """The uptime SQL and its parameters; ``param`` spells a named parameter
    (``%(x)s`` for psycopg, ``:{}`` for sqlite3), the rest is portable SQL.

    Whole UTC days come from the daily rollups, the partial first and last day
    from the hourly ones: 30 days for 1,000 checks read ~30k + ~48k rows, not 720k.
    """
    p = {n: param.format(n) for n in ("since", "first_day", "today", "now", "tenant", "service")}
    cols = ", ".join(_GROUP[level])
    since = hour_of(now - window)
    first_day = _midnight(since) + (timedelta(days=1) if since != _midnight(since) else ZERO)
    today = _midnight(hour_of(now))
    filters = "".join(
        f" AND {name} = {p[name]}" for name, v in (("tenant", tenant), ("service", service)) if v
    )
    counts = "executions, successes, failures"
    hourly = f"SELECT {cols}, {counts} FROM check_rollups WHERE hour >= "
    if first_day < today:
        parts = [
            f"{hourly}{p['since']} AND hour < {p['first_day']}{filters}",
            f"SELECT {cols}, {counts} FROM check_rollups_daily "
            f"WHERE day >= {p['first_day']} AND day < {p['today']}{filters}",
            f"{hourly}{p['today']} AND hour <= {p['now']}{filters}",
        ]
    else:
        parts = [f"{hourly}{p['since']} AND hour <= {p['now']}{filters}"]
    params = {
        "since": since,
        "first_day": first_day,
        "today": today,
        "now": now,
        "tenant": tenant,
        "service": service,
    }
    query = (
        f"SELECT {cols}, sum(executions), sum(successes), sum(failures) FROM ("
        + " UNION ALL ".join(parts)
        + f") u GROUP BY {cols} ORDER BY {cols}"
    )
    return query, params


def uptime_rows(level: Level, rows: Iterable[Sequence[Any]]) -> list[Uptime]:
    width = len(_GROUP[level])
    out = []
    for row in rows:
        names = list(row[:width]) + [None] * (3 - width)
        out.append(Uptime(names[0], names[1], names[2], *(int(v) for v in row[width:])))
    return out


async def uptime(
    conn: AsyncConnection[Any],
    level: Level,
    window: timedelta,
    now: datetime,
    *,
    tenant: str | None = None,
    service: str | None = None,
) -> list[Uptime]:
    """Uptime per check, service or tenant over ``window`` before ``now``."""
    await rollups.refresh(conn)
    query, params = uptime_query(level, window, now, tenant=tenant, service=service)
    # prepare=False: a prepared generic plan ignores the selective filters
    cur = await conn.execute(query, params, prepare=False)  # type: ignore[arg-type]
    return uptime_rows(level, await cur.fetchall())


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
    return latency_points(await cur.fetchall(), since, step)


def latency_points(
    rows: Iterable[Sequence[Any]], since: datetime, step: timedelta
) -> list[LatencyPoint]:
    """Rows of (hour, executions, sum, min, max, buckets) -> one point per ``step``."""
    groups: dict[datetime, list[Sequence[Any]]] = defaultdict(list)
    origin = hour_of(since)
    for row in rows:
        groups[origin + step * ((row[0] - origin) // step)].append(row)
    points = []
    for at, group in sorted(groups.items()):
        count = sum(r[1] for r in group)
        low, high = min(r[3] for r in group), max(r[4] for r in group)
        merged = histogram.merge(r[5] for r in group)
        p50, p95, p99 = (histogram.quantile(merged, q, low, high) for q in (0.5, 0.95, 0.99))
        points.append(LatencyPoint(at, count, sum(r[2] for r in group) / count, p50, p95, p99))
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
