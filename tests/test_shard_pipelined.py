"""Pipelined shard owners: the lease moves while batches are in flight."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.evaluator.router import shard_of
from services.evaluator.shards import ShardedEvaluator
from shared.streams import StreamNames, encode
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.wait import wait_until
from tests.test_evaluator_service import DISK, alerts, config, sample

pytestmark = ON_SINGLE_AND_CLUSTER
SHARDS = 2
# Every sample crosses the threshold: one alert event each, firing and resolving in turn.
VALUES = [90.0 + i % 7 if i % 2 == 0 else 10.0 for i in range(400)]
# Another member takes the lease, once the owner has committed some batches but not all,
# and returns what was committed at that moment (one script: nothing lands in between).
STEAL = """
local cursor = redis.call('HGET', KEYS[2], KEYS[3])
if not cursor or cursor == ARGV[2] then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
return {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[4])}
"""


def owner(redis: Redis, names: StreamNames, member: str) -> ShardedEvaluator:
    # Batches of 5: many in flight at once. No ticks: only batches commit. Short blocking
    # reads: a quick stop.
    return ShardedEvaluator(
        config(DISK),
        redis,
        names,
        SHARDS,
        member,
        lease_ms=60_000,
        batch_size=5,
        block_ms=100,
        tick_s=600,
    )


async def test_a_lease_taken_mid_pipeline_fails_the_commit_and_the_next_owner_resumes(
    redis: Redis, names: StreamNames, redis_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    shard = shard_of("acme", SHARDS)
    stream = names.shard(shard, "metrics")
    keys = [names.shard(shard, k) for k in ("evaluator:lease", "evaluator:cursor")]
    keys += [stream, names.shard(shard, "evaluator:state")]
    start = datetime.now(UTC) - timedelta(hours=1)
    pipe = redis.pipeline(transaction=False)
    for i, value in enumerate(VALUES):
        pipe.xadd(stream, encode(sample(value, at=start + timedelta(seconds=i))))  # type: ignore[arg-type]
    *_, last = await pipe.execute()

    old = owner(redis, names, "old")
    await old.balance()
    stolen: list[list[list[bytes]]] = []

    async def steal() -> bool:
        got = await redis.eval(STEAL, 4, *keys, "thief", last)  # type: ignore[misc]
        stolen.extend([got] if got else [])
        return bool(got)

    with caplog.at_level(logging.WARNING, logger="shared.consumer"):
        await wait_until(steal, what="a lease taken with batches left")
        await wait_until(lambda: old.owned() == [1 - shard], what="the old owner giving up")
    cursor, state = stolen[0]
    # Nothing the old owner computed after the lease moved was committed; it did not
    # release the lease it no longer held.
    assert await redis.hgetall(keys[1]) == _pairs(cursor)  # type: ignore[misc]
    assert await redis.hgetall(keys[3]) == _pairs(state)  # type: ignore[misc]
    assert await redis.get(keys[0]) == b"thief"
    failures = [r.getMessage() for r in caplog.records if "transaction failed" in r.getMessage()]
    assert any("Watched variable changed" in f for f in failures), failures
    await old.stop()

    await redis.delete(keys[0])  # the thief hands over in turn
    new = owner(redis, names, "new")
    await new.balance()
    await wait_until(lambda: _at(redis, keys[1], stream, last), what="the new owner at the end")
    await new.stop()
    got = await alerts(redis, names)
    firsts = list({a.event_id: a for a in got}.values())  # a replayed tail has the same ids
    assert [a.value for a in firsts] == VALUES  # each change once, in order, none lost
    if redis_kind == "single":  # the events are in the transaction: not even replayed
        assert len(got) == len(VALUES)


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def _at(redis: Redis, cursor_key: str, stream: str, last: bytes) -> bool:
    return bool(await redis.hget(cursor_key, stream) == last)  # type: ignore[misc]
