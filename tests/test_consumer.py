"""The stream adapter against a real Redis: batches, dead letters, reclaiming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import CheckResult
from shared.consumer import BatchProcessor, Consumer, attach
from shared.settings import Settings
from shared.streams import Codec, StreamNames, encode, ensure_group
from tests.support.wait import wait_until

GROUP = "g"


def result(i: int) -> CheckResult:
    return CheckResult(
        tenant="t",
        service="s",
        check=f"c{i}",
        tier="core",
        status="healthy",
        latency_ms=1.0,
        observed_at=datetime.now(UTC),
    )


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[bytes, CheckResult]] = []
        self.fail = False

    async def __call__(self, items: list[tuple[bytes, CheckResult]], pipe: Pipeline) -> None:
        if self.fail:
            raise RuntimeError("handler broke")
        self.seen += items


@pytest_asyncio.fixture(loop_scope="session")
async def running(
    redis: Redis, settings: Settings, names: StreamNames
) -> AsyncIterator[tuple[Recorder, RedisBroker]]:
    recorder = Recorder()
    broker = RedisBroker(settings.redis_url)
    consumer = Consumer(names.results, GROUP, Codec(CheckResult), recorder)
    await ensure_group(redis, names.results, GROUP)
    attach(broker, redis, settings, names, consumer)
    yield recorder, broker
    await broker.stop()


async def test_backlog_written_before_the_group_exists_is_consumed(
    redis: Redis, settings: Settings, names: StreamNames, running: tuple[Recorder, RedisBroker]
) -> None:
    recorder, broker = running
    await redis.delete(names.results)  # the fixture made the group; start without it
    for i in range(3):
        await redis.xadd(names.results, encode(result(i)))
    await ensure_group(redis, names.results, GROUP)
    await broker.start()
    await wait_until(lambda: len(recorder.seen) == 3, what="backlog")
    assert [r.check for _, r in recorder.seen] == ["c0", "c1", "c2"]


async def test_malformed_entries_go_to_the_dead_letter_stream_with_the_reason(
    redis: Redis, names: StreamNames, running: tuple[Recorder, RedisBroker]
) -> None:
    recorder, broker = running
    await broker.start()
    await redis.xadd(names.results, {"data": b"\xff not json", "trace": "abc"})
    await redis.xadd(names.results, {"payload": "{}"})
    await redis.xadd(names.results, {"data": b'{"tenant": "t"}'})
    await redis.xadd(names.results, {"headers": "x", "data": b"[]"})
    await redis.xadd(names.results, encode(result(9)))
    await wait_until(lambda: len(recorder.seen) == 1, what="the good entry")

    async def four_dead() -> bool:
        return int(await redis.xlen(names.deadletter)) == 4

    await wait_until(four_dead, what="dead letters")
    dead = [fields for _, fields in await redis.xrange(names.deadletter)]
    reasons = [d[b"dlq:reason"].decode() for d in dead]
    assert "JSON is malformed" in reasons[0]
    assert reasons[1] == "entry has no 'data' field"
    assert "missing required field `service`" in reasons[2]
    assert "Expected `object`, got `array`" in reasons[3]
    assert dead[0][b"trace"] == b"abc" and dead[0][b"data"] == b"\xff not json"
    assert dead[1][b"payload"] == b"{}"
    assert {d[b"dlq:stream"] for d in dead} == {names.results.encode()}
    pending = await redis.xpending(names.results, GROUP)
    assert pending["pending"] == 0


async def test_a_dead_workers_pending_entries_are_reclaimed(
    redis: Redis, settings: Settings, names: StreamNames, running: tuple[Recorder, RedisBroker]
) -> None:
    recorder, broker = running
    await redis.xadd(names.results, encode(result(1)))
    # A worker that read the entry and died before acknowledging it.
    await redis.xreadgroup(GROUP, "dead-worker", {names.results: ">"}, count=10)
    await broker.start()
    await wait_until(lambda: len(recorder.seen) == 1, what="the reclaimed entry")
    assert (await redis.xpending(names.results, GROUP))["pending"] == 0


async def test_an_entry_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    recorder = Recorder()
    recorder.fail = True
    await ensure_group(redis, names.results, GROUP)
    process = BatchProcessor(
        redis, names, Consumer(names.results, GROUP, Codec(CheckResult), recorder), max_deliveries=2
    )
    await redis.xadd(names.results, encode(result(1)))
    await redis.xreadgroup(GROUP, "a", {names.results: ">"})  # three deliveries
    await redis.xautoclaim(names.results, GROUP, "b", 0, "0")
    await redis.xautoclaim(names.results, GROUP, "c", 0, "0")
    entries = await redis.xrange(names.results)
    ids = [entry_id for entry_id, _ in entries]
    await process(ids, [fields for _, fields in entries], reclaimed=True)
    dead = await redis.xrange(names.deadletter)
    assert len(dead) == 1
    assert dead[0][1][b"dlq:reason"] == b"not acknowledged after 3 deliveries"
    assert (await redis.xpending(names.results, GROUP))["pending"] == 0


async def test_a_failing_handler_leaves_the_batch_pending(redis: Redis, names: StreamNames) -> None:
    recorder = Recorder()
    recorder.fail = True
    await ensure_group(redis, names.results, GROUP)
    process = BatchProcessor(
        redis, names, Consumer(names.results, GROUP, Codec(CheckResult), recorder), max_deliveries=5
    )
    await redis.xadd(names.results, encode(result(1)))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.results: ">"})
    with pytest.raises(RuntimeError):
        await process([i for i, _ in entries], [f for _, f in entries])
    assert (await redis.xpending(names.results, GROUP))["pending"] == 1
    assert await redis.xlen(names.deadletter) == 0
