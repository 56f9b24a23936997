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

from redis.asyncio import Redis

from services.evaluator.router import ROUTER_GROUP, shard_of
from services.evaluator.shards import ShardedEvaluator
from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames, ensure_group
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.wait import wait_until
from tests.test_cluster_shards import RULES, SHARDS, TENANTS, feed, sharded, shards_drained
from tests.test_evaluator_service import alerts, config, drained, evaluator

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
    cfg = config(*RULES, tenants=TENANTS)
    await feed(redis, names, range(2), datetime.now(UTC))
    router = ShardedEvaluator(cfg, redis, names, SHARDS, "solo").router
    public = await redis.xrange(names.results)
    shard = shard_of(_tenant(public[0][1]), SHARDS)
    ours = [(i, f) for i, f in public if shard_of(_tenant(f), SHARDS) == shard]
    first, later = ours[0], ours[1:]
    # A later entry reaches the shard before the first one (a pending entry reclaimed
    # out of order): the first one's id is refused, and it is not in the shard.
    await router.route(names.results, later)  # type: ignore[arg-type]
    await router.route(names.results, [first])  # type: ignore[arg-type]
    got = await redis.xrange(names.shard(shard, "results"))
    assert [f for _, f in got] == [f for _, f in later] + [first[1]]
    assert got[-1][0] > later[-1][0]  # under a new id, after what the shard held
