"""The evaluator's CPU work per observation, without Redis: for profilers and callgrind.

The same batches as ``bench_evaluator`` go through the same code (the codec, the metrics
handler, the engine, the checkpoint queued on a pipeline) but the pipeline is never
sent, so the figure is the Python side alone and does not depend on the server.
On a shared machine count instructions instead of timing: run it under callgrind with
``--passes 1`` and ``--passes 2``; the difference is one pass::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m tests.bench.evaluator_cpu --count 20000 --passes 2

Without valgrind it prints the time per observation and a cProfile top list (``--profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

from redis.asyncio import Redis

from services.evaluator.service import Evaluator
from shared.config import Config, Tenant
from shared.consumer import xack_packed
from shared.runner import settle_heap
from shared.streams import StreamNames
from tests.bench.bench_evaluator import BATCH, TENANTS, _entries


async def one_pass(config: Config, entries: list[dict[bytes, bytes]]) -> None:
    """Every entry once through a fresh evaluator, in batches of ``BATCH``."""
    redis = Redis()  # never connected: the pipelines are built, not executed
    evaluator = Evaluator(config, redis, StreamNames("cpu"))
    consumer = evaluator.consumers()[1]
    for start in range(0, len(entries), BATCH):
        batch = entries[start : start + BATCH]
        ids = [b"%d-0" % (start + i) for i in range(len(batch))]
        good, bad = consumer.codec.decode(ids, batch)
        assert not bad
        pipe = redis.pipeline(transaction=True)
        after = await consumer.handle(good, pipe)
        xack_packed(pipe, consumer.stream, consumer.group, ids)
        if after is not None:
            after()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.evaluator_cpu")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print a cProfile top list")
    parser.add_argument(
        "--series",
        type=int,
        help="series (default: count / 20, each seen twice, as in the full bench); fewer "
        "series with --interval fill the windows as a day of scrapes would",
    )
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between rounds")
    args = parser.parse_args()
    config = Config(tenants=[Tenant(id=f"t{t}") for t in range(TENANTS)], default_rules=True)
    entries = _entries(args.count, args.series or max(1, args.count // 20), args.interval)
    profile = cProfile.Profile() if args.profile else None
    settle_heap()  # as the runner and the stream bench do: the GC as in production
    for _ in range(args.passes):
        started = time.thread_time()
        if profile:
            profile.enable()
        await one_pass(config, entries)
        if profile:
            profile.disable()
        elapsed = time.thread_time() - started
        print(f"{elapsed / args.count * 1e6:.2f} µs per observation ({args.count:,})")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    asyncio.run(main())
