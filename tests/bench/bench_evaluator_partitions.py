"""Evaluator scale-out: two processes, each owning half the tenants (``partitions: 2``).

Both processes read every entry in their own consumer group and evaluate only their
tenants, so the pair is measured from one start signal until the slower one has
acknowledged all entries. Same entries and rule pack as ``bench_evaluator``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from redis.asyncio import Redis

from services.evaluator.service import Evaluator
from shared.config import Config, Tenant
from shared.consumer import BatchProcessor
from shared.streams import StreamNames, ensure_group
from tests.bench.bench_evaluator import BATCH, TENANTS, _entries
from tests.bench.framework import BenchEnv, Row, median_of

PARTITIONS = 2


def _config() -> Config:
    return Config(tenants=[Tenant(id=f"t{t}") for t in range(TENANTS)], default_rules=True)


async def _consume(
    url: str, prefix: str, partition: int, total: int, go: Event, ready: Queue[float]
) -> float:
    redis = Redis.from_url(url)
    evaluator = Evaluator(
        _config(), redis, StreamNames(prefix), partition=partition, partitions=PARTITIONS
    )
    consumer = evaluator.consumers()[1]
    process = BatchProcessor(redis, evaluator.names, consumer, 5)
    await redis.ping()
    ready.put(time.time())  # imported and connected: startup is not throughput
    await asyncio.to_thread(go.wait)
    done = 0
    while done < total:
        [[_, got]] = await redis.xreadgroup(
            consumer.group, "c", {evaluator.names.metrics: ">"}, count=BATCH
        )
        await process([i for i, _ in got], [f for _, f in got])
        done += len(got)
    finished = time.time()
    await redis.delete(evaluator.state_key)
    await redis.aclose()
    return finished


def _worker(
    url: str, prefix: str, partition: int, total: int, go: Event, out: Queue[float]
) -> None:
    out.put(asyncio.run(_consume(url, prefix, partition, total, go, out)))


async def run(env: BenchEnv) -> list[Row]:
    total = env.size(200_000, 5_000)
    redis = Redis.from_url(env.redis_url)
    entries = _entries(total)
    spawn = multiprocessing.get_context("spawn")

    async def once() -> float:
        names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
        for p in range(PARTITIONS):
            group = Evaluator(_config(), redis, names, partition=p, partitions=PARTITIONS).group
            await ensure_group(redis, names.metrics, group)
        for start in range(0, total, BATCH):
            pipe = redis.pipeline(transaction=False)
            for fields in entries[start : start + BATCH]:
                pipe.xadd(names.metrics, fields)  # type: ignore[arg-type]
            await pipe.execute()
        go, out = spawn.Event(), spawn.Queue()
        workers = [
            spawn.Process(target=_worker, args=(env.redis_url, names.prefix, p, total, go, out))
            for p in range(PARTITIONS)
        ]
        for w in workers:
            w.start()
        for _ in workers:  # each says it is ready on the same queue before it finishes
            await asyncio.to_thread(out.get, True, 60)
        started = time.time()
        go.set()
        finished = [await asyncio.to_thread(out.get, True, 300) for _ in workers]
        for w in workers:
            await asyncio.to_thread(w.join, 30)
        await redis.delete(names.metrics, names.alerts)
        return total / (max(finished) - started)

    value = await median_of(1 if env.quick else 3, once)
    await redis.aclose()
    return [
        Row(
            f"evaluator observations/s from the stream (default pack, {PARTITIONS} processes)",
            value,
            "obs/s",
            goal=100_000,
            note=f"{total:,} metric samples, partitions: {PARTITIONS}, each reads every entry",
        )
    ]
