"""Pipelined batches: computed while the previous transaction runs, committed in order."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.evaluator.service import Evaluator
from shared.consumer import BatchProcessor
from shared.streams import StreamNames, encode, ensure_group
from tests.support.wait import wait_until
from tests.test_evaluator_service import DISK, alerts, config, drained, sample


async def _submit(evaluator: Evaluator, entry_id: bytes, value: float, pipe: Pipeline) -> None:
    after = await evaluator.handle_metrics([(entry_id, sample(value))], pipe)
    await evaluator.submit(pipe, after)


async def test_a_batch_computed_on_a_failed_one_is_dropped_and_the_next_reloads(
    redis: Redis, names: StreamNames
) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    doomed = redis.pipeline(transaction=True)
    await doomed.watch(names.key("w"))
    await redis.set(names.key("w"), "changed")  # so its EXEC will run nothing
    doomed.multi()
    await _submit(evaluator, b"1-0", 95, doomed)  # fires, in memory
    # Computed on top of the fire before knowing it fails: resolves it, in memory.
    await _submit(evaluator, b"2-0", 10, redis.pipeline(transaction=True))
    await evaluator.settle()
    assert await alerts(redis, names) == []  # neither the fire nor its resolve went out
    assert await redis.hgetall(evaluator.state_key) == {}

    await _submit(evaluator, b"3-0", 97, redis.pipeline(transaction=True))
    await evaluator.settle()
    (alert,) = await alerts(redis, names)  # from the checkpoint again: a fresh fire
    assert (alert.state, alert.value) == ("firing", 97)


async def test_transactions_commit_in_the_order_batches_were_computed(
    redis: Redis, names: StreamNames
) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    for i, value in enumerate([90, 10, 91, 11, 92, 12]):
        # Each returns as soon as the previous transaction settled: two in hand at once.
        await _submit(evaluator, b"%d-0" % i, value, redis.pipeline(transaction=True))
    await evaluator.settle()
    got = [(a.state, a.value) for a in await alerts(redis, names)]
    assert got == [
        ("firing", 90),
        ("resolved", 10),
        ("firing", 91),
        ("resolved", 11),
        ("firing", 92),
        ("resolved", 12),
    ]


async def test_reading_ahead_consumes_everything_in_order_and_acknowledges_it(
    redis: Redis, names: StreamNames
) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    consumer = evaluator.consumers()[1]
    await ensure_group(redis, names.metrics, consumer.group)
    values = [90.0 + i if i % 2 == 0 else 10.0 for i in range(40)]  # fire, resolve, ...
    for value in values:
        await redis.xadd(names.metrics, encode(sample(value)))
    process = BatchProcessor(redis, names, consumer, 5)
    reader = asyncio.create_task(process.read_ahead("c", 3, 50))  # small batches: many
    try:
        await wait_until(lambda: drained(redis, names.metrics, consumer.group), what="drained")
        await evaluator.settle()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    got = [a.value for a in await alerts(redis, names)]
    assert got == values  # every change once, in stream order
    fresh = Evaluator(config(DISK), redis, names)
    await fresh.load()
    (state,) = fresh.states.values()
    assert state.firing_since is None and state.last_resolved is not None


async def test_reading_ahead_recreates_a_group_lost_with_redis_data(
    redis: Redis, names: StreamNames
) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    consumer = evaluator.consumers()[1]
    await ensure_group(redis, names.metrics, consumer.group)
    process = BatchProcessor(redis, names, consumer, 5)
    reader = asyncio.create_task(process.read_ahead("c", 10, 50))
    try:
        await redis.xgroup_destroy(names.metrics, consumer.group)  # as a restart without data
        await redis.xadd(names.metrics, encode(sample(95)))
        await wait_until(lambda: _any_alert(redis, names), what="the alert")
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    (alert,) = await alerts(redis, names)
    assert alert.value == 95


async def _any_alert(redis: Redis, names: StreamNames) -> bool:
    return int(await redis.xlen(names.alerts)) > 0


async def test_a_batch_handled_directly_is_committed_when_the_call_returns(
    redis: Redis, names: StreamNames
) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    consumer = evaluator.consumers()[1]
    await ensure_group(redis, names.metrics, consumer.group)
    entry = await redis.xadd(names.metrics, encode(sample(95)))
    [[_, got]] = await redis.xreadgroup(consumer.group, "c", {names.metrics: ">"})
    await BatchProcessor(redis, names, consumer, 5)([entry], [f for _, f in got])
    (alert,) = await alerts(redis, names)  # no wait: the call returned after the commit
    assert alert.value == 95
    assert await drained(redis, names.metrics, consumer.group)
