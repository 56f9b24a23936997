"""Rollups off the write path: writers note hours, refresh recomputes them from raw rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver import histogram, rollups
from services.archiver.service import Archiver
from services.archiver.settings import ArchiveConfig
from services.archiver.store import RESULTS, write
from shared.configbase import Seconds
from shared.streams import StreamNames

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
HOUR = NOW.replace(minute=0)


def result(latency: float, status: str = "healthy", check: str = "web", minute: int = 0) -> Any:
    return CheckResult(
        tenant="acme",
        service="shop",
        check=check,
        tier="core",
        status=status,  # type: ignore[arg-type]
        latency_ms=latency,
        observed_at=HOUR + timedelta(minutes=minute),
    )


async def archive(conn: AsyncConnection[Any], items: list[tuple[bytes, Any]]) -> None:
    await write(conn, RESULTS, items, today=NOW.date(), retention_days=30)


async def hourly(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT check_name, executions, successes, failures, latency_sum, latency_min, "
        "latency_max, latency_buckets FROM check_rollups WHERE hour = %s ORDER BY 1",
        (HOUR,),
    )
    return await cur.fetchall()


async def daily(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT check_name, executions, successes, failures FROM check_rollups_daily "
        "WHERE day = %s ORDER BY 1",
        (HOUR.replace(hour=0),),
    )
    return await cur.fetchall()


async def test_recomputed_buckets_match_the_python_histogram_on_and_between_bounds(
    database_url: str,
) -> None:
    # Bucket edges are where SQL and Python could disagree: on a bound, just above it.
    latencies = [0.0, 0.05, *histogram.BOUNDS[:40:3], 0.1001, 17.5, 1e6]
    latencies += [b + 1e-9 for b in histogram.BOUNDS[5:60:7]]
    statuses = ["healthy", "degraded", "unhealthy", "unknown"]
    items = [
        (f"{i + 1}-0".encode(), result(v, statuses[i % 4], minute=i % 60))
        for i, v in enumerate(latencies)
    ]
    async with await AsyncConnection.connect(database_url) as conn:
        await archive(conn, items)
        assert await hourly(conn) == []  # not on the write path any more
        assert await rollups.refresh(conn) == 1
        [(check, executions, up, down, total, low, high, buckets)] = await hourly(conn)
    assert (check, executions) == ("web", len(latencies))
    kinds = [i % 4 for i in range(len(latencies))]
    assert (up, down) == (sum(k < 2 for k in kinds), kinds.count(2))
    assert (total, low, high) == (pytest.approx(sum(latencies)), 0.0, 1e6)
    assert buckets == histogram.counts(latencies)


async def test_late_and_redelivered_rows_leave_hourly_and_daily_rollups_exact(
    database_url: str,
) -> None:
    first = [(f"{i}-0".encode(), result(1.0, minute=i)) for i in range(1, 4)]
    late = [(b"10-0", result(5.0, "unhealthy", minute=50)), (b"11-0", result(2.0, check="api"))]
    async with await AsyncConnection.connect(database_url) as conn:
        await archive(conn, first)
        await rollups.refresh(conn)
        await archive(conn, late)  # a later batch for an hour already rolled up
        await archive(conn, [*first, *late])  # and a redelivery of everything
        assert await rollups.refresh(conn) == 1
        assert await rollups.refresh(conn) == 0
        assert [r[:7] for r in await hourly(conn)] == [
            ("api", 1, 1, 0, 2.0, 2.0, 2.0),
            ("web", 4, 3, 1, 8.0, 1.0, 5.0),
        ]
        assert await daily(conn) == [("api", 1, 1, 0), ("web", 4, 3, 1)]


async def test_refreshing_while_writers_write_the_same_hour_loses_nothing(
    database_url: str,
) -> None:
    writers, batches, size = 3, 8, 50
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        async with await AsyncConnection.connect(database_url) as conn:
            for b in range(batches):
                items = [
                    (f"{w * 10_000 + b * size + i + 1}-{w}".encode(), result(1.0, minute=i % 60))
                    for i in range(size)
                ]
                await archive(conn, items)

    async def refresher() -> int:
        rounds = 0
        async with await AsyncConnection.connect(database_url) as conn:
            while not stop.is_set():
                await rollups.refresh(conn)
                rounds += 1
        return rounds

    refreshing = asyncio.create_task(refresher())
    await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(writers))), 60)
    stop.set()
    assert await asyncio.wait_for(refreshing, 30) > 0
    async with await AsyncConnection.connect(database_url) as conn:
        await rollups.refresh(conn)  # whatever committed after the last round
        [row] = await hourly(conn)
        assert row[1:3] == (writers * batches * size, writers * batches * size)
        assert await daily(conn) == [("web", writers * batches * size, writers * batches * size, 0)]


async def test_the_archiver_rolls_up_new_hours_by_itself(
    database_url: str, names: StreamNames, redis: Redis
) -> None:
    config = ArchiveConfig(rollup_every=Seconds(0.05))
    archiver = Archiver(database_url, names, config, clock=lambda: NOW)
    rolling = asyncio.create_task(archiver.roll_up_forever())
    try:
        items = [(f"{i}-0".encode(), result(2.0, minute=i)) for i in range(1, 4)]
        await archiver.writers[CheckResult](items, redis.pipeline())
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            deadline = asyncio.get_running_loop().time() + 10
            while not (rolled := await hourly(conn)):
                assert asyncio.get_running_loop().time() < deadline, "never rolled up"
                await asyncio.sleep(0.05)
    finally:
        rolling.cancel()
        await archiver.close()
    assert [r[:3] for r in rolled] == [("web", 3, 3)]
