"""Hourly rollups per check: executions, successes, failures, latency sum/min/max
and a latency histogram. Uptime and latency queries read these, not raw rows, so
their cost does not grow with check frequency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from schemas import CheckResult
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

    def add(self, result: CheckResult) -> None:
        self.executions += 1
        self.successes += result.status in UP
        self.failures += result.status in DOWN
        self.latency_sum += result.latency_ms
        self.latency_min = min(self.latency_min, result.latency_ms)
        self.latency_max = max(self.latency_max, result.latency_ms)
        self.buckets[histogram.bucket(result.latency_ms)] += 1


def array_literal(values: list[int]) -> str:
    """``{1,2,3}``: ~10x faster than letting psycopg adapt a list for COPY."""
    return "{" + ",".join(map(str, values)) + "}"


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def aggregate(results: Iterable[CheckResult]) -> dict[Key, Rollup]:
    out: dict[Key, Rollup] = {}
    for r in results:
        key = (r.tenant, r.service, r.check, hour_of(r.observed_at))
        out.setdefault(key, Rollup()).add(r)
    return out


_COLUMNS = (
    "tenant, service, check_name, hour, executions, successes, failures, "
    "latency_sum, latency_min, latency_max, latency_buckets"
)
# One statement per batch: the deltas are COPied into a temporary table first.
# ORDER BY: concurrent archivers lock rollup rows in one order, so never deadlock.
UPSERT = f"""
INSERT INTO check_rollups AS r ({_COLUMNS}) SELECT {_COLUMNS} FROM staging_rollups
ORDER BY tenant, service, check_name, hour
ON CONFLICT (tenant, service, check_name, hour) DO UPDATE SET
    executions = r.executions + excluded.executions,
    successes = r.successes + excluded.successes,
    failures = r.failures + excluded.failures,
    latency_sum = r.latency_sum + excluded.latency_sum,
    latency_min = least(r.latency_min, excluded.latency_min),
    latency_max = greatest(r.latency_max, excluded.latency_max),
    latency_buckets = vigil_add_buckets(r.latency_buckets, excluded.latency_buckets)
"""

UPSERT_DAILY = """
INSERT INTO check_rollups_daily AS r
    (tenant, service, check_name, day, executions, successes, failures)
SELECT tenant, service, check_name, date_trunc('day', hour, 'UTC'), sum(executions),
    sum(successes), sum(failures)
FROM staging_rollups GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (tenant, service, check_name, day) DO UPDATE SET
    executions = r.executions + excluded.executions,
    successes = r.successes + excluded.successes,
    failures = r.failures + excluded.failures
"""


async def add(conn: AsyncConnection[Any], results: list[Any]) -> None:
    """Fold newly archived results into their hours (inside the caller's transaction)."""
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_rollups (LIKE check_rollups) ON COMMIT DELETE ROWS"
    )
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY staging_rollups ({_COLUMNS}) FROM STDIN") as copy:
            for key, r in aggregate(results).items():
                await copy.write_row(
                    (
                        *key,
                        r.executions,
                        r.successes,
                        r.failures,
                        r.latency_sum,
                        r.latency_min,
                        r.latency_max,
                        array_literal(r.buckets),
                    )
                )
        await cur.execute(UPSERT)
        await cur.execute(UPSERT_DAILY)
