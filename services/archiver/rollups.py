"""Hourly rollups per check: executions, successes, failures, latency sum/min/max
and a latency histogram. Uptime and latency queries read these, not raw rows, so
their cost does not grow with check frequency.

They are kept off the write path: a writer only notes which hours it touched
(``mark``); ``refresh`` recomputes those hours from the raw rows. The archiver
refreshes every few seconds and every query refreshes first, so answers are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from services.archiver import histogram

UP = frozenset({"healthy", "degraded"})
DOWN = frozenset({"unhealthy"})  # "unknown" counts as an execution, neither up nor down

Key = tuple[str, str, str, datetime]


@dataclass(slots=True)
class Rollup:
    executions: int = 0
    successes: int = 0
    failures: int = 0
    latency_sum: float = 0.0
    latency_min: float = float("inf")
    latency_max: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * histogram.SIZE)

    def add(self, status: str, latency_ms: float) -> None:
        self.executions += 1
        self.successes += status in UP
        self.failures += status in DOWN
        self.latency_sum += latency_ms
        self.latency_min = min(self.latency_min, latency_ms)
        self.latency_max = max(self.latency_max, latency_ms)
        self.buckets[histogram.bucket(latency_ms)] += 1


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def aggregate(
    rows: Iterable[tuple[str, str, str, str, float]], hour: datetime
) -> dict[Key, Rollup]:
    """Rollups of one hour's (tenant, service, check, status, latency) rows, in Python
    for SQLite; PostgreSQL computes the same in SQL (``RECOMPUTE``)."""
    out: dict[Key, Rollup] = {}
    for tenant, service, check, status, latency_ms in rows:
        out.setdefault((tenant, service, check, hour), Rollup()).add(status, latency_ms)
    return out


COLUMNS = (
    "tenant, service, check_name, hour, executions, successes, failures, "
    "latency_sum, latency_min, latency_max, latency_buckets"
)
_LOCK = 0x76696732  # one refresh at a time: two would race on the same rollup rows
# bisect_left(BOUNDS, x) is the number of bounds below x: SIZE - 1 minus the number at or
# above it, which width_bucket counts on the negated bounds in ascending order.
_NEGATED_BOUNDS = [-b for b in reversed(histogram.BOUNDS)]
_UP = ", ".join(f"'{s}'" for s in sorted(UP))
_DOWN = ", ".join(f"'{s}'" for s in sorted(DOWN))

# One hour of raw results -> its rollup rows, replacing what was there: the result
# is the same however often it runs. Buckets are counted sparse, then made dense.
RECOMPUTE = f"""
WITH per_bucket AS (
    SELECT tenant, service, check_name,
        {histogram.SIZE - 1} - width_bucket(-latency_ms, %(bounds)s::float8[]) AS b,
        count(*) AS n,
        count(*) FILTER (WHERE status IN ({_UP})) AS up,
        count(*) FILTER (WHERE status IN ({_DOWN})) AS down,
        sum(latency_ms) AS total, min(latency_ms) AS low, max(latency_ms) AS high
    FROM check_results WHERE observed_at >= %(start)s AND observed_at < %(end)s
    GROUP BY 1, 2, 3, 4
)
INSERT INTO check_rollups AS r ({COLUMNS})
SELECT tenant, service, check_name, %(start)s, sum(n), sum(up), sum(down), sum(total),
    min(low), max(high),
    (SELECT array_agg(coalesce(x.n, 0) ORDER BY i)
     FROM generate_series(0, {histogram.SIZE - 1}) i
     LEFT JOIN unnest(array_agg(b), array_agg(n)) x(b, n) ON x.b = i)
FROM per_bucket GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (tenant, service, check_name, hour) DO UPDATE SET
    executions = excluded.executions, successes = excluded.successes,
    failures = excluded.failures, latency_sum = excluded.latency_sum,
    latency_min = excluded.latency_min, latency_max = excluded.latency_max,
    latency_buckets = excluded.latency_buckets
"""
# A day's counts from its hours (ORDER BY: concurrent writers lock rows in one order).
RECOMPUTE_DAY = """
INSERT INTO check_rollups_daily AS r
    (tenant, service, check_name, day, executions, successes, failures)
SELECT tenant, service, check_name, %(start)s, sum(executions), sum(successes), sum(failures)
FROM check_rollups WHERE hour >= %(start)s AND hour < %(end)s
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (tenant, service, check_name, day) DO UPDATE SET
    executions = excluded.executions, successes = excluded.successes,
    failures = excluded.failures
"""
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


async def mark(conn: AsyncConnection[Any], hours: Iterable[int]) -> None:
    """Note the hours (since the epoch) of newly archived results, in the caller's
    transaction so that the note commits with the rows; ``refresh`` rolls them up."""
    await conn.execute(
        "INSERT INTO check_rollups_pending (hour) SELECT unnest(%s::timestamptz[])",
        ([datetime.fromtimestamp(h * 3600, UTC) for h in sorted(hours)],),
    )


async def refresh(conn: AsyncConnection[Any]) -> int:
    """Recompute the rollups of every pending hour and of their days; returns how many hours.

    Idempotent and safe beside writers: a note is deleted only once seen, and the
    recompute, a later statement, sees at least the rows committed with it. Rows
    committed meanwhile leave their own note for the next refresh.
    """
    # Nothing noted (the usual case for a query): one round trip instead of four.
    if await (await conn.execute("SELECT 1 FROM check_rollups_pending LIMIT 1")).fetchone() is None:
        return 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        cur = await conn.execute("DELETE FROM check_rollups_pending RETURNING hour")
        hours = sorted({hour_of(row[0]) for row in await cur.fetchall()})
        for start in hours:
            params = {"start": start, "end": start + HOUR, "bounds": _NEGATED_BOUNDS}
            await conn.execute(RECOMPUTE, params, prepare=False)  # keep partition pruning
        for start in sorted({h.replace(hour=0) for h in hours}):
            await conn.execute(RECOMPUTE_DAY, {"start": start, "end": start + DAY})
    return len(hours)
