"""The sharded evaluator (``VIGIL_EVALUATOR_SHARDS``) in 1 and 2 processes, router included.

Each process runs what ``vigil run evaluator`` runs with shards: a ``ShardedEvaluator``
(router, leases, shard owners). The processes are started on an empty stream and left
to share the shards' leases; then the same 200,000 samples over 10,000 series as
``bench_evaluator`` appear on the public stream at once (RENAME of a pre-loaded stream,
its router group with it), and the time runs until the router has acknowledged the last
entry and every shard's owner has committed its last one. The CPU time of the processes
over that interval is reported per observation. A cProfile of the router alone (no
owners) over the same entries prints its top entries.

The shard owners alone (``owners``; no router): the same samples pre-loaded on the shard
streams, split by tenant as the router would, then one process takes every shard's
lease and the clock runs until each owner committed its last entry (CPU time of the
process per observation; with ``profile`` a cProfile of that run).
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import multiprocessing
import pstats
import threading
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import msgspec
from redis.asyncio import Redis

from schemas import MetricSample
from services.evaluator.router import ROUTER_GROUP, shard_of
from services.evaluator.shards import ShardedEvaluator
from shared.config import Config, Tenant
from shared.runner import settle_heap
from shared.streams import DATA, StreamNames, ensure_group
from tests.bench.bench_evaluator import BATCH, TENANTS, _entries
from tests.bench.framework import BenchEnv, Row

SHARDS = 4
LEASE_MS = 3000  # membership and leases settle within a second or two before the start


def _config() -> Config:
    return Config(tenants=[Tenant(id=f"t{t}") for t in range(TENANTS)], default_rules=True)


async def _serve(
    url: str, prefix: str, member: str, mark: Event, stop: Event, tick_s: float
) -> float:
    """One evaluator process; returns its CPU seconds from ``mark`` to ``stop``."""
    redis = Redis.from_url(url)
    sharded = ShardedEvaluator(
        _config(), redis, StreamNames(prefix), SHARDS, member, lease_ms=LEASE_MS, tick_s=tick_s
    )
    settle_heap()  # as the runner does in production
    marked: list[float] = []
    watcher = threading.Thread(target=lambda: (mark.wait(), marked.append(time.process_time())))
    watcher.start()
    task = asyncio.ensure_future(sharded.run())
    await asyncio.to_thread(stop.wait)
    spent = time.process_time() - (marked[0] if marked else 0.0)
    task.cancel()
    await asyncio.wait([task], timeout=10)
    await redis.aclose()
    return spent


def _process(
    url: str, prefix: str, member: str, mark: Event, stop: Event, out: Queue[float], tick_s: float
) -> None:
    out.put(asyncio.run(_serve(url, prefix, member, mark, stop, tick_s)))


async def _load(redis: Redis, stream: str, entries: list[dict[bytes, bytes]]) -> None:
    await ensure_group(redis, stream, ROUTER_GROUP)
    for start in range(0, len(entries), BATCH):
        pipe = redis.pipeline(transaction=False)
        for fields in entries[start : start + BATCH]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        await pipe.execute()


async def _balanced(redis: Redis, names: StreamNames, processes: int) -> bool:
    """Every shard leased, each process holding its fair share, and a router."""
    holders = [await redis.get(names.shard(s, "evaluator:lease")) for s in range(SHARDS)]
    counts = {h: holders.count(h) for h in holders}
    router = await redis.get(names.key("evaluator:router-lease"))
    fair = -(-SHARDS // processes)
    return (
        None not in counts
        and len(counts) == processes
        and max(counts.values()) <= fair
        and router is not None
    )


async def _done(
    redis: Redis, names: StreamNames, total: int, owners: bool = True, router: bool = True
) -> bool:
    """The router acknowledged ``total`` entries (with ``router``) and (with ``owners``)
    each shard's owner committed its last one."""
    for info in await redis.xinfo_groups(names.metrics) if router else []:
        behind = int(info["entries-read"] or 0) < total or int(info["pending"])
        if info["name"] == ROUTER_GROUP.encode() and behind:
            return False
    if not owners:
        return True
    pipe = redis.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.hget(names.shard(shard, "evaluator:cursor"), names.shard(shard, "metrics"))
        pipe.xrevrange(names.shard(shard, "metrics"), count=1)
    got = await pipe.execute()
    return all(
        not last or cursor == last[0][0] for cursor, last in zip(got[::2], got[1::2], strict=True)
    )


async def _wait(predicate: object, timeout: float, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"sharded evaluator bench: timed out ({predicate})")
        await asyncio.sleep(poll)


async def _once(
    env: BenchEnv, entries: list[dict[bytes, bytes]], processes: int, owners_only: bool = False
) -> tuple[float, float]:
    """(observations/s, CPU µs per observation over all processes). ``owners_only``: the
    entries appear on the shard streams instead (the router idles), the clock runs until
    each shard's owner committed its last one, and no tick falls in the run (the plain
    evaluator's bench has none either; one tick of every shard's 10,000 series costs
    about as much as 20,000 observations)."""
    redis = Redis.from_url(env.redis_url)
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    staging = names.key("staging")  # same hash tag as the public streams: RENAME works on a cluster
    tick_s = 600.0 if owners_only else 5.0  # 5 s: as run
    if owners_only:
        renames = await _load_shards(redis, names, entries)
    else:
        await _load(redis, staging, entries)
        renames = [(staging, names.metrics)]
    spawn = multiprocessing.get_context("spawn")
    mark, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    procs = [
        spawn.Process(
            target=_process,
            args=(env.redis_url, names.prefix, f"p{i}", mark, stop, out, tick_s),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        await _wait(lambda: _balanced(redis, names, processes), 60)
        mark.set()
        await asyncio.sleep(0.05)  # the processes note their CPU time
        started = time.perf_counter()
        pipe = redis.pipeline(transaction=False)
        for source, stream in renames:
            pipe.rename(source, stream)
        await pipe.execute()
        await _wait(lambda: _done(redis, names, len(entries), router=not owners_only), 300)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        cpu = [await asyncio.to_thread(out.get, True, 60) for _ in procs]
        for p in procs:
            await asyncio.to_thread(p.join, 30)
        for key in await redis.keys(f"{{{names.prefix}*"):
            await redis.delete(key)
        await redis.aclose()
    return len(entries) / elapsed, sum(cpu) / len(entries) * 1e6


async def _profile_router(env: BenchEnv, entries: list[dict[bytes, bytes]]) -> None:
    redis = Redis.from_url(env.redis_url)
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    await _load(redis, names.metrics, entries)
    router = ShardedEvaluator(_config(), redis, names, SHARDS, "router", lease_ms=LEASE_MS).router
    profile = cProfile.Profile()
    profile.enable()
    cpu = time.process_time()
    task = asyncio.ensure_future(router.run())
    await _wait(lambda: _done(redis, names, len(entries), owners=False), 300, poll=0.1)
    cpu = time.process_time() - cpu
    profile.disable()
    task.cancel()
    await asyncio.wait([task])
    print(f"router alone: {cpu / len(entries) * 1e6:.1f} µs CPU per entry\n{_top(profile, 12)}")
    await _forget(redis, names)


def _top(profile: cProfile.Profile, lines: int) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(lines)
    return out.getvalue()


async def _forget(redis: Redis, names: StreamNames) -> None:
    """Delete what a profiling run left (every key of its prefix) and disconnect."""
    for key in await redis.keys(f"{{{names.prefix}*"):
        await redis.delete(key)
    await redis.aclose()


async def _load_shards(
    redis: Redis, names: StreamNames, entries: list[dict[bytes, bytes]]
) -> list[tuple[str, str]]:
    """Pre-load each shard's part of ``entries`` (split as the router splits them) on a
    staging stream in the shard's slot; returns (staging, shard stream) pairs."""
    used: set[int] = set()
    for start in range(0, len(entries), BATCH):
        pipe = redis.pipeline(transaction=False)
        for fields in entries[start : start + BATCH]:
            tenant = msgspec.json.decode(fields[DATA], type=MetricSample).tenant
            used.add(shard := shard_of(tenant, SHARDS))
            pipe.xadd(names.shard(shard, "staging"), fields)  # type: ignore[arg-type]
        await pipe.execute()
    return [(names.shard(s, "staging"), names.shard(s, "metrics")) for s in sorted(used)]


async def _profile_owners(env: BenchEnv, entries: list[dict[bytes, bytes]]) -> None:
    """cProfile of one process owning every shard (no router) over ``entries``."""
    redis = Redis.from_url(env.redis_url)
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    for staging, stream in await _load_shards(redis, names, entries):
        await redis.rename(staging, stream)
    sharded = ShardedEvaluator(
        _config(), redis, names, SHARDS, "owner", lease_ms=LEASE_MS, tick_s=600.0
    )
    settle_heap()
    profile = cProfile.Profile()
    profile.enable()
    await sharded.balance()  # no other member: it takes every shard
    await _wait(lambda: _done(redis, names, 0, router=False), 300, poll=0.05)
    profile.disable()
    await sharded.stop()
    print(f"shard owners alone (4 shards, 1 process):\n{_top(profile, 15)}")
    await _forget(redis, names)


async def run(env: BenchEnv) -> list[Row]:
    total = env.size(200_000, 5_000)
    entries = _entries(total)
    runs = 1 if env.quick else 3
    figures: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}  # 0: owners alone
    for _ in range(runs):  # alternately, in the same conditions
        for n, got in figures.items():
            got.append(await _once(env, entries, max(n, 1), owners_only=n == 0))
            what = f"{n} process(es)" if n else "owners alone, 1 process"
            print(f"  {what}: {got[-1][0]:,.0f} obs/s, {got[-1][1]:.1f} µs CPU/obs")
    figures = {n: sorted(got) for n, got in figures.items()}
    owners, one, two = (figures[n][runs // 2] for n in (0, 1, 2))  # medians by rate
    if not env.quick:
        await _profile_router(env, entries)
        await _profile_owners(env, entries)
    series = min(TENANTS * 100, total // 10)
    note = f"{total:,} metric samples over {series:,} series, {SHARDS} shards, router included"
    return [
        Row(
            "evaluator observations/s, sharded (default pack, 1 process)",
            one[0],
            "obs/s",
            note=f"{note}; {one[1]:.1f} µs CPU per observation",
        ),
        Row(
            "evaluator observations/s, sharded (default pack, 2 processes)",
            two[0],
            "obs/s",
            goal=100_000,
            note=f"{note}; {two[1]:.1f} µs CPU per observation, both processes",
        ),
        Row("evaluator scale-out, sharded (2 vs 1 process)", two[0] / one[0], "x"),
        Row(
            "evaluator shard owners alone (default pack, 1 process, no router)",
            owners[0],
            "obs/s",
            note=f"{total:,} metric samples over {series:,} series on the {SHARDS} shard streams, "
            "no tick in the run; "
            f"{owners[1]:.1f} µs CPU per observation",
        ),
    ]
