"""Garbage on the streams: every entry is either handled or dead-lettered with a reason,
and the consumer keeps going."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import WIRE_TYPES, MetricSample
from shared.consumer import BatchProcessor, Consumer
from shared.streams import DATA, Codec, StreamNames, encode, ensure_group

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
BODIES = (
    st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v, allow_nan=True).encode())
    | st.just(b'{"tenant": "t", "value": NaN}')
    | st.just(b"[" * 5000 + b"]" * 5000)
)
FIELDS = st.dictionaries(
    st.sampled_from([b"data", b"headers", b"x", "\u00e9".encode()]), BODIES, max_size=3
)


@given(st.sampled_from(sorted(WIRE_TYPES)), st.lists(FIELDS, max_size=20))
def test_decoding_never_raises_and_accounts_for_every_entry(
    kind: str, entries: list[dict[bytes, bytes]]
) -> None:
    ids = [f"{i + 1}-0".encode() for i in range(len(entries))]
    good, bad = Codec(WIRE_TYPES[kind]).decode(ids, entries)
    assert sorted([i for i, _ in good] + [r.entry_id for r in bad]) == sorted(ids)
    assert all(r.reason for r in bad)
    for _, message in good:  # what is accepted is a valid message, re-encodable as is
        assert msgspec.json.decode(msgspec.json.encode(message), type=WIRE_TYPES[kind])
        for value in msgspec.structs.asdict(message).values():
            assert not (isinstance(value, float) and math.isnan(value))


NASTY: list[dict[bytes, bytes]] = [
    {},
    {b"data": b""},
    {b"data": b"\xff\xfe\x00garbage"},
    {b"data": b"null"},
    {b"data": b"[" * 10_000 + b"]" * 10_000},
    {
        b"data": b'{"tenant": "t", "service": "s", "metric": "m", "value": 1e999,'
        b' "observed_at": "2026-11-24T10:00:00Z"}'
    },
    {
        b"data": b'{"tenant": "t", "service": "s", "metric": "m", "value": "1",'
        b' "observed_at": "2026-11-24T10:00:00Z"}'
    },
    {b"data": b"x" * 1_000_000},
    {b"headers": b"\xff", b"data": b"{}"},
]


async def test_a_consumer_fed_garbage_dead_letters_it_and_goes_on(
    redis: Redis, names: StreamNames
) -> None:
    handled: list[MetricSample] = []

    async def handle(items: list[tuple[bytes, MetricSample]], _pipe: Pipeline) -> None:
        handled.extend(m for _, m in items)

    await ensure_group(redis, names.metrics, "g")
    process = BatchProcessor(
        redis, names, Consumer(names.metrics, "g", Codec(MetricSample), handle), max_deliveries=3
    )
    good = MetricSample(
        tenant="t",
        service="s",
        metric="m",
        value=1.0,
        observed_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
    )
    for fields in NASTY:
        await redis.xadd(names.metrics, fields or {b"empty": b""})
    await redis.xadd(names.metrics, encode(good))
    [[_, entries]] = await redis.xreadgroup("g", "w", {names.metrics: ">"}, count=100)
    await process([i for i, _ in entries], [f for _, f in entries])
    assert handled == [good]
    dead = await redis.xrange(names.deadletter)
    assert len(dead) == len(NASTY)
    assert all(f[b"dlq:reason"] for _, f in dead)
    assert (await redis.xpending(names.metrics, "g"))["pending"] == 0
    # the original fields travel with the reason
    assert dead[2][1][DATA] == b"\xff\xfe\x00garbage"
