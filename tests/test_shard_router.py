"""The shard router across a crash between routing a batch and acknowledging it.

The crashed router is the real one: it takes the lease, reads and routes a batch with
``Router.read``/``Router.route`` and stops before ``Router.ack``, as a process killed
there would. Its successor is a whole sharded evaluator.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import msgspec
from redis.asyncio import Redis

from services.evaluator.router import ROUTER_GROUP, Entry, Router, shard_of
from services.evaluator.shards import KINDS, ShardedEvaluator
from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames, ensure_group
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.wait import wait_until
from tests.test_cluster_shards import RULES, SHARDS, TENANTS, feed, sharded, shards_drained
from tests.test_evaluator_service import alerts, config, drained, evaluator, sample

pytestmark = ON_SINGLE_AND_CLUSTER
STEPS = range(60)  # 720 results and 720 metric samples: more than one read of 500 each
LEASE_MS = 500


async def crash_after_routing(redis: Redis, names: StreamNames, cfg: Config) -> int:
    """A router that routed one batch of each stream and died before acknowledging it;
    its lease is left to lapse. Returns how many entries it left pending."""
    dead = ShardedEvaluator(cfg, redis, names, SHARDS, "dead", lease_ms=60_000)
    router = dead.router
    for stream in router.kinds:
        await ensure_group(redis, stream, ROUTER_GROUP)
    assert await redis.set(router.lease_key, dead.member, nx=True, px=dead.lease_ms)
    read = await router.read(dict.fromkeys(router.kinds, ">"))
    assert read is not None
    for stream, entries in read.items():
        assert not await router.route(stream, entries)  # nothing to dead-letter
    return sum(len(entries) for entries in read.values())


async def lapse(redis: Redis, names: StreamNames) -> None:
    """The dead router's lease runs out."""
    await redis.pexpire(names.key("evaluator:router-lease"), 1)


async def test_a_batch_routed_again_after_a_crash_reaches_each_shard_once(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    cfg = config(*RULES, tenants=TENANTS)
    await feed(redis, names, STEPS, datetime.now(UTC) - timedelta(minutes=5))
    assert await crash_after_routing(redis, names, cfg) == 2 * 500
    await lapse(redis, names)
    # Only the successor's router runs (no shard owners), so nothing is trimmed away.
    successor = ShardedEvaluator(cfg, redis, names, SHARDS, "next", lease_ms=LEASE_MS)
    async with _router_alone(successor):
        for stream in (names.results, names.metrics):
            await wait_until(lambda s=stream: drained(redis, s, ROUTER_GROUP), what="routing")
    for kind in ("results", "metrics"):
        public = await redis.xrange(names.key(kind))
        assert len(public) == len(TENANTS) * len(STEPS)
        for shard in range(SHARDS):
            mine = [(i, f) for i, f in public if shard_of(_tenant(f), SHARDS) == shard]
            got = await redis.xrange(names.shard(shard, kind))
            # Every entry once, under its public id, fields as the producer wrote them.
            assert [i for i, _ in got] == [i for i, _ in mine]
            assert got == mine


async def test_a_successor_skips_what_the_owners_already_read_and_trimmed(
    redis: Redis, settings: Settings
) -> None:
    cfg = config(*RULES, tenants=TENANTS)
    single, split = (
        StreamNames(settings.stream_prefix + "a"),
        StreamNames(settings.stream_prefix + "b"),
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    for names in (single, split):
        await feed(redis, names, STEPS, start)
    async with evaluator(dataclasses.replace(settings, stream_prefix=single.prefix), cfg):
        for stream in (single.metrics, single.results):
            await wait_until(lambda s=stream: drained(redis, s, "evaluator"), what="one")

    await crash_after_routing(redis, split, cfg)
    routed = {k: await _routed(redis, split, k) for k in ("results", "metrics")}
    leased = dataclasses.replace(sharded(settings, split, "next"), evaluator_lease_ms=LEASE_MS)
    async with evaluator(leased, cfg):
        # The owners evaluate the routed batch and trim it while the dead router's
        # lease still holds; then it lapses and the successor routes that batch again.
        await wait_until(lambda: _consumed(redis, split, routed), what="the routed batch read")
        assert await _trimmed(redis, split, routed), "the owners trimmed nothing"
        await lapse(redis, split)
        await wait_until(lambda: shards_drained(redis, split), what="everything evaluated")

    expected = sorted(a.event_id for a in await alerts(redis, single))
    assert len(expected) > 20
    # A re-evaluated result would have turned a healthy/unhealthy alternation into a
    # second failure in a row, so equal events mean each observation counted once.
    assert sorted(a.event_id for a in await alerts(redis, split)) == expected


def _tenant(fields: dict[bytes, bytes]) -> str:
    body = fields[b"data"]
    return body.split(b'"tenant":"', 1)[1].split(b'"', 1)[0].decode()


async def _routed(redis: Redis, names: StreamNames, kind: str) -> dict[int, int]:
    """Entries per shard stream of ``kind`` now."""
    return {s: int(await redis.xlen(names.shard(s, kind))) for s in range(SHARDS)}


async def _consumed(redis: Redis, names: StreamNames, routed: dict[str, dict[int, int]]) -> bool:
    """Each owner's cursor is at its shard streams' last entry."""
    for kind in routed:
        for shard in range(SHARDS):
            stream = names.shard(shard, kind)
            cursor = await redis.hget(names.shard(shard, "evaluator:cursor"), stream)  # type: ignore[misc]
            last = await redis.xrevrange(stream, count=1)
            if last and cursor != last[0][0]:
                return False
    return True


async def _trimmed(redis: Redis, names: StreamNames, routed: dict[str, dict[int, int]]) -> bool:
    now = {k: await _routed(redis, names, k) for k in routed}
    return any(now[k][s] < routed[k][s] for k in routed for s in range(SHARDS))


@asynccontextmanager
async def _router_alone(sharded_evaluator: ShardedEvaluator) -> AsyncIterator[None]:
    """The router of a sharded evaluator without its shard owners (no ``balance``)."""
    task = asyncio.ensure_future(sharded_evaluator.router.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_an_entry_routed_out_of_order_goes_in_late_not_lost(
    redis: Redis, names: StreamNames
) -> None:
    await feed(redis, names, range(2), datetime.now(UTC))
    router = await _leased_router(redis, names)
    public = await redis.xrange(names.results)
    shard = shard_of(_tenant(public[0][1]), SHARDS)
    ours = {i.decode() for i, f in public if shard_of(_tenant(f), SHARDS) == shard}
    read = await router.read(dict.fromkeys(router.kinds, ">"))
    assert read is not None
    first, *later = [e for e in read[names.results] if e.id in ours]
    # A later entry reaches the shard before the first one (a pending entry reclaimed
    # out of order): the first one's id is refused, and it is not in the shard.
    await router.route(names.results, later)
    await router.route(names.results, [first])
    got = await redis.xrange(names.shard(shard, "results"))
    expected = {i.decode(): f for i, f in public}
    assert [f for _, f in got] == [expected[e.id] for e in [*later, first]]
    assert got[-1][0] > later[-1].id.encode()  # under a new id, after what the shard held


# Values Redis' cmsgpack packs with each str header (fixstr, str 8, 16, 32), bytes that
# are not UTF-8 and bytes that look like MessagePack headers among them.
ODD = [bytes(range(256))[i % 256 : i % 256 + 1] * n for i, n in enumerate((0, 31, 32, 255))]
ODD += [b"\xc4\xff\x00\xd9" * 64, b"\xff" * 65_535, b"\x00\xdb" * 40_000]


async def test_fields_reach_the_shard_byte_for_byte(redis: Redis, names: StreamNames) -> None:
    body = msgspec.json.encode(sample(1.0, tenant="t3"))
    odd: dict[bytes, bytes] = {b"\xff%d" % i: v for i, v in enumerate(ODD)}
    many = {b"f%d" % i: b"%d" % i for i in range(1000)}
    entries = [{b"data": body} | odd, many | {b"data": body}, {b"\x00": b"", b"data": body}]
    ids = [await redis.xadd(names.metrics, fields) for fields in entries]  # type: ignore[arg-type]
    router = await _leased_router(redis, names)
    read = await _route_once(router)
    assert [e.id for e in read[names.metrics]] == [i.decode() for i in ids]
    shard = shard_of("t3", SHARDS)
    assert await redis.xrange(names.shard(shard, "metrics")) == list(zip(ids, entries, strict=True))
    # The other shards got no batch: their streams were not even created.
    others = [
        names.shard(s, k) for s in range(SHARDS) for k in KINDS if s != shard or k != "metrics"
    ]
    assert not await redis.exists(*others)
    assert await drained(redis, names.metrics, ROUTER_GROUP)


async def test_a_repeated_data_field_routes_by_the_last_one(
    redis: Redis, names: StreamNames
) -> None:
    # As the shard's owner will read it: redis-py makes a dict of the fields.
    first, last = (msgspec.json.encode(sample(1.0, tenant=t)) for t in ("t1", "t2"))
    assert shard_of("t1", SHARDS) != shard_of("t2", SHARDS)
    await redis.execute_command("XADD", names.metrics, "*", "data", first, "data", last)
    await _route_once(await _leased_router(redis, names))
    assert await redis.xlen(names.shard(shard_of("t2", SHARDS), "metrics")) == 1


async def test_entries_routing_cannot_read_are_dead_lettered_as_they_were(
    redis: Redis, names: StreamNames
) -> None:
    good = {b"data": msgspec.json.encode(sample(1.0, tenant="t1"))}
    bad = [
        {b"data": b"\xff\xfe not json"} | {b"odd%d" % i: v for i, v in enumerate(ODD)},
        {b"payload": b"{}"},
        {b"data": b'{"service": "no tenant"}'},
    ]
    for fields in (good, *bad, good):
        await redis.xadd(names.metrics, fields)  # type: ignore[arg-type]
    gone = await redis.xadd(names.metrics, good)  # type: ignore[arg-type]
    router = await _leased_router(redis, names)
    # A router read everything and died; the last entry was trimmed away since.
    assert await router.read(dict.fromkeys(router.kinds, ">"))
    await redis.xdel(names.metrics, gone)
    cfg = config(*RULES, tenants=TENANTS)
    await lapse(redis, names)
    async with _router_alone(
        ShardedEvaluator(cfg, redis, names, SHARDS, "next", lease_ms=LEASE_MS)
    ):
        await wait_until(lambda: _pending(redis, names.metrics, 0), what="routing")
    letters = await redis.xrange(names.deadletter)
    assert [_original(f) for _, f in letters] == [*bad, {}]
    assert [f[b"dlq:entry_id"] for _, f in letters][-1] == gone
    reasons = [f[b"dlq:reason"].decode() for _, f in letters]
    assert reasons[1] == reasons[3] == "entry has no 'data' field"
    assert reasons[0].startswith("metrics: ") and "tenant" in reasons[2]
    assert await redis.xlen(names.shard(shard_of("t1", SHARDS), "metrics")) == 2


async def test_a_router_that_lost_its_lease_reads_nothing(redis: Redis, names: StreamNames) -> None:
    await feed(redis, names, range(1), datetime.now(UTC))
    router = await _leased_router(redis, names)
    assert await _route_once(router)  # an empty read while leased is not a lost lease
    await redis.set(router.lease_key, "someone else")
    await feed(redis, names, range(1), datetime.now(UTC))
    assert await router.read(dict.fromkeys(router.kinds, ">")) is None
    assert await _pending(redis, names.results, 0)
    assert int(await redis.xlen(names.results)) == 2 * len(TENANTS)


async def _leased_router(redis: Redis, names: StreamNames) -> Router:
    """A router holding the lease, as ``Router.run`` has it, without its loop."""
    owner = ShardedEvaluator(config(*RULES, tenants=TENANTS), redis, names, SHARDS, "solo")
    for stream in owner.router.kinds:
        await ensure_group(redis, stream, ROUTER_GROUP)
    assert await redis.set(owner.router.lease_key, owner.member, px=owner.lease_ms)
    return owner.router


async def _route_once(router: Router) -> dict[str, list[Entry]]:
    """One read of new entries, routed and acknowledged."""
    read = await router.read(dict.fromkeys(router.kinds, ">"))
    assert read is not None
    for stream, entries in read.items():
        if entries:
            await router.ack(stream, entries, await router.route(stream, entries))
    return read


async def _pending(redis: Redis, stream: str, count: int) -> bool:
    """The router group holds ``count`` entries of ``stream`` read but not acknowledged."""
    info = [i for i in await redis.xinfo_groups(stream) if i["name"] == ROUTER_GROUP.encode()]
    return int(info[0]["pending"]) == count


def _original(letter: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: v for k, v in letter.items() if not k.startswith(b"dlq:")}
