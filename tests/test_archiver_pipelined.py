"""The archiver's results and metrics consumers: their own batch size, read one batch
ahead, acknowledged after commit; during a PostgreSQL outage the batch read ahead is held
too, so neither it nor the batch being written is reclaimed or dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from schemas import MetricSample
from services.archiver.service import GROUP
from shared import metrics
from shared.config import Config
from shared.localservers import LocalPostgres
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.support.wait import wait_until
from tests.test_archiver import result, rows
from tests.test_archiver_outage import (
    archived,
    archiver_on_own_postgres,
    count_is,
    fast_stop,
    pending_at_least,
)


def batches(stream: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "vigil_batch_size_count", {"stream": stream, "group": GROUP}
    )
    return value or 0.0


async def test_results_and_metrics_are_read_in_the_archivers_own_batch_size(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    now = datetime.now(UTC)
    for i in range(10):
        await redis.xadd(names.results, encode(result(i, now)))
        sample = MetricSample(tenant="acme", service="shop", metric="m", value=i, observed_at=now)
        await redis.xadd(names.metrics, encode(sample))
    settings = dataclasses.replace(settings, database_url=database_url, archiver_batch_size=4)
    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, Config(), ["archiver"], stop))
    try:
        await wait_until(lambda: acked(redis, names.results, 10), what="results acknowledged")
        await wait_until(lambda: acked(redis, names.metrics, 10), what="metrics acknowledged")
    finally:
        stop.set()
        await asyncio.wait_for(service, 20)
    assert rows(database_url, "select count(*) from check_results") == [(10,)]
    assert rows(database_url, "select count(*) from metric_samples") == [(10,)]
    # 4 + 4 + 2, not the process's VIGIL_BATCH_SIZE (500): one batch.
    assert batches(names.results) == 3
    assert batches(names.metrics) == 3


async def acked(redis: Redis, stream: str, n: int) -> bool:
    groups = await redis.xinfo_groups(stream)  # none until the service made its group
    return any(g["entries-read"] == n and g["pending"] == 0 for g in groups)


async def test_an_outage_holds_the_batch_read_ahead_too(
    redis: Redis, settings: Settings, names: StreamNames, server_dir: Path
) -> None:
    async with archiver_on_own_postgres(settings, server_dir, archiver_batch_size=5) as pg:
        await outage_with_a_batch_read_ahead(redis, names, pg)


async def outage_with_a_batch_read_ahead(
    redis: Redis, names: StreamNames, pg: LocalPostgres
) -> None:
    now = datetime.now(UTC)
    for i in range(5):
        await redis.xadd(names.results, encode(result(i, now)))
    await wait_until(lambda: count_is(pg.url, 5), what="first rows archived")
    await asyncio.to_thread(fast_stop, pg)
    # In one transaction: the blocked read gets a full batch, not the first entry alone.
    pipe = redis.pipeline(transaction=True)
    for i in range(5, 25):
        pipe.xadd(names.results, encode(result(i, now)))  # type: ignore[arg-type]
    await pipe.execute()

    async def pending() -> int:
        return int((await redis.xpending(names.results, GROUP))["pending"])

    # One batch in the failing write, the next one read ahead: both in hand.
    await wait_until(lambda: pending_at_least(pending, 10), what="a batch read ahead")
    # Absence over time can only be shown by waiting: five reclaim periods pass, and
    # neither batch is reclaimed (delivered again) nor dead-lettered.
    await asyncio.sleep(2.0)
    assert await archived(pg.url) == -1
    held = await redis.xpending_range(names.results, GROUP, "-", "+", 100)
    assert len(held) == 10
    assert {p["times_delivered"] for p in held} == {1}
    assert await redis.xlen(names.deadletter) == 0

    await asyncio.to_thread(pg.start)
    await wait_until(lambda: count_is(pg.url, 25), timeout=30, what="catch-up")
    await wait_until(lambda: pending_is_zero(pending), what="all acknowledged")
    assert await redis.xlen(names.deadletter) == 0


async def pending_is_zero(pending: object) -> bool:
    return await pending() == 0  # type: ignore[operator,no-any-return]
