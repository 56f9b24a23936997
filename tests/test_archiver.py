"""The archiver against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver.service import GROUP, Archiver
from shared.consumer import BatchProcessor
from shared.streams import StreamNames, encode, ensure_group


def result(i: int, at: datetime) -> CheckResult:
    return CheckResult(
        tenant="acme",
        service="shop",
        check="web",
        tier="core",
        status="healthy" if i % 2 else "unhealthy",
        latency_ms=float(i),
        observed_at=at,
        details={"i": i},
    )


async def test_a_redelivered_batch_is_archived_once(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, retention_days=30)
    results_consumer = archiver.consumers()[0]
    await ensure_group(redis, names.results, GROUP)
    now = datetime.now(UTC)
    for i in range(5):
        await redis.xadd(names.results, encode(result(i, now)))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.results: ">"})
    ids, fields = [i for i, _ in entries], [f for _, f in entries]
    process = BatchProcessor(redis, names, results_consumer, 5)
    await process(ids, fields)
    await process(ids, fields)  # redelivered after a crash before XACK
    await archiver.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select stream_id, status, latency_ms, details from check_results order by latency_ms"
        ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (ids[i].decode(), float(i), {"i": i}) for i in range(5)
    ]
    assert (await redis.xpending(names.results, GROUP))["pending"] == 0


async def test_retention_prunes_old_history(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, retention_days=30)
    now = datetime.now(UTC)
    items = [(b"1-0", result(1, now - timedelta(days=31))), (b"2-0", result(2, now))]
    await archiver.writers[0](items, redis.pipeline())
    await archiver.close()
    from services.archiver.store import prune

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        deleted = await prune(conn, days=30)
        remaining = await (await conn.execute("select stream_id from check_results")).fetchall()
    assert deleted["check_results"] == 1
    assert remaining == [("2-0",)]
