"""Evaluator throughput from the stream: default rule pack, 10,000 series, one process.

Entries are pre-loaded on ``{prefix}:metrics``; the measured loop is the production path
(``BatchProcessor.read_ahead``): XREADGROUP COUNT 500 one batch ahead, decode, the engine,
one MULTI with the alert events, the state checkpoint and the XACK, sent while the next
batch is computed. A cProfile run of the same loop prints its top entries.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import io
import pstats
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import MetricSample
from services.evaluator.service import Evaluator
from shared.config import Config, Tenant
from shared.consumer import AfterCommit, BatchProcessor
from shared.runner import settle_heap
from shared.streams import StreamNames, encode, ensure_group
from tests.bench.framework import BenchEnv, Row, median_of

BATCH = 500
TENANTS, SERVICES = 100, 100  # 10,000 series (tenant, service)
METRICS = (
    ("http_requests", 1000.0),
    ("http_requests_5xx", 20.0),
    ("queue_depth", 40.0),
    ("db_pool_in_use", 5.0),
    ("db_pool_max", 20.0),
    ("disk_used_percent", 60.0),
    ("jobs_total", 50.0),
    ("jobs_failed", 1.0),
    ("sync_errors", 0.0),
    ("failed_logins", 1.0),
)


def _entries(
    total: int, series_count: int = TENANTS * SERVICES, interval: float = 0.0
) -> list[dict[bytes, bytes]]:
    """``total`` samples, the metrics of one series after another; with ``interval`` each
    round over all series is that many seconds after the previous (full windows), else
    all of them arrive within seconds."""
    per_round = len(METRICS) * series_count
    start = datetime.now(UTC) - timedelta(seconds=60 + interval * (total // per_round + 1))
    out = []
    for i in range(total):
        metric, value = METRICS[i % len(METRICS)]
        series = (i // len(METRICS)) % series_count
        at = i // per_round * interval if interval else i // 100 / 1000
        sample = MetricSample(
            tenant=f"t{series // SERVICES}",
            service=f"s{series % SERVICES}",
            metric=metric,
            value=value * (2.0 if i % 97 == 0 else 1.0),  # a few cross their thresholds
            observed_at=start + timedelta(seconds=at),
        )
        out.append(encode(sample))  # type: ignore[arg-type]
    return out


async def run(env: BenchEnv) -> list[Row]:
    total = env.size(200_000, 5_000)
    redis = Redis.from_url(env.redis_url)
    config = Config(tenants=[Tenant(id=f"t{t}") for t in range(TENANTS)], default_rules=True)
    entries = _entries(total)
    # Python CPU per observation: steadier than the wall figure on a shared machine.
    cpu_us: list[float] = []

    async def once(profile: cProfile.Profile | None = None) -> float:
        names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
        evaluator = Evaluator(config, redis, names)
        consumer = evaluator.consumers()[1]
        await ensure_group(redis, names.metrics, consumer.group)
        for start in range(0, total, BATCH):
            pipe = redis.pipeline(transaction=False)
            for fields in entries[start : start + BATCH]:
                pipe.xadd(names.metrics, fields)  # type: ignore[arg-type]
            await pipe.execute()
        committed, finished = [0], asyncio.Event()

        async def submit(pipe: Pipeline, after: AfterCommit) -> asyncio.Task[None]:
            def counted() -> None:  # the measured loop ends with the last commit
                after()
                committed[0] += 1
                if committed[0] * BATCH >= total:
                    finished.set()

            return await evaluator.submit(pipe, counted)

        counting = dataclasses.replace(consumer, submit=submit)
        process = BatchProcessor(redis, names, counting, 5)
        settle_heap()  # as the runner does in production
        if profile:
            profile.enable()
        started, cpu = time.perf_counter(), time.process_time()
        reader = asyncio.create_task(process.read_ahead("c", BATCH, 100))
        await finished.wait()
        elapsed = time.perf_counter() - started
        cpu_us.append((time.process_time() - cpu) / total * 1e6)
        if profile:
            profile.disable()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await redis.delete(names.metrics, names.alerts, evaluator.state_key)
        return total / elapsed

    value = await median_of(1 if env.quick else 3, once)
    cpu = statistics.median(cpu_us)
    series = min(TENANTS * SERVICES, total // len(METRICS))
    profile = cProfile.Profile()
    await once(profile)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
    print(out.getvalue())
    await redis.aclose()
    return [
        Row(
            "evaluator observations/s from the stream (default pack, 1 process)",
            value,
            "obs/s",
            goal=100_000,
            note=f"{total:,} metric samples over {series:,} series, COUNT {BATCH}, "
            f"Python CPU {cpu:.1f} µs per observation",
        )
    ]
