"""The packed checkpoint write against a real Redis: the same hash fields as HSET."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from services.evaluator.checkpoint import hset_packed
from shared.streams import StreamNames

# Sizes on both sides of every MessagePack header boundary the Lua reader handles
# (fixmap/map16/map32, fixstr/str8/str16, bin8/bin16/bin32) and of its 2000-argument chunks.
CASES = [
    (1, 1, 0),
    (15, 31, 255),
    (16, 32, 256),
    (999, 255, 65_535),
    (1000, 256, 65_536),
    (1001, 70_000, 3),
    (70_000, 20, 40),
]


@pytest.mark.parametrize(("count", "key_len", "value_len"), CASES)
async def test_packed_hset_writes_exactly_the_fields_hset_would(
    redis: Redis, names: StreamNames, count: int, key_len: int, value_len: int
) -> None:
    rng = random.Random(count)
    stem = ("r\x1fé" * key_len)[:key_len]  # non-ASCII: a key's byte length is not its length
    fields = {f"{stem}{i}": rng.randbytes(value_len) for i in range(count)}
    key, expected = names.key("packed"), names.key("plain")
    pipe = redis.pipeline(transaction=True)
    hset_packed(pipe, key, fields)
    pipe.hset(expected, mapping=fields)  # type: ignore[arg-type]
    await pipe.execute()
    assert await redis.hgetall(key) == await redis.hgetall(expected)
    assert await redis.hlen(key) == count


async def test_packed_hset_overwrites_and_keeps_other_fields(
    redis: Redis, names: StreamNames
) -> None:
    key = names.key("packed")
    await redis.hset(key, mapping={"kept": b"1", "changed": b"old"})
    pipe = redis.pipeline(transaction=True)
    hset_packed(pipe, key, {"changed": b"new", "added": b"\x00\xff"})
    hset_packed(pipe, key, {})  # nothing to write: no command at all
    assert len(pipe.command_stack) == 1
    await pipe.execute()
    assert await redis.hgetall(key) == {b"kept": b"1", b"changed": b"new", b"added": b"\x00\xff"}
