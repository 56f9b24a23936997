"""The shared stream path: decode + dead-letter check + XACK per batch, no handler work."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import CheckResult
from shared.consumer import BatchProcessor, Consumer
from shared.streams import Codec, StreamNames, encode, ensure_group
from tests.bench.framework import BenchEnv, Row, median_of

BATCH = 500


async def _nothing(_items: list[tuple[bytes, CheckResult]], _pipe: Pipeline) -> None:
    return None


async def run(env: BenchEnv) -> list[Row]:
    total = env.size(200_000, 5_000)
    redis = Redis.from_url(env.redis_url)
    result = CheckResult(
        tenant="acme",
        service="shop",
        check="web",
        tier="core",
        status="healthy",
        latency_ms=12.5,
        observed_at=datetime.now(UTC),
    )
    fields = encode(result)

    async def once() -> float:
        names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
        await ensure_group(redis, names.results, "g")
        for start in range(0, total, BATCH):
            pipe = redis.pipeline(transaction=False)
            for _ in range(min(BATCH, total - start)):
                pipe.xadd(names.results, fields)
            await pipe.execute()
        process = BatchProcessor(
            redis, names, Consumer(names.results, "g", Codec(CheckResult), _nothing), 5
        )
        started, done = time.perf_counter(), 0
        while done < total:
            [[_, entries]] = await redis.xreadgroup("g", "c", {names.results: ">"}, count=BATCH)
            await process([i for i, _ in entries], [f for _, f in entries])
            done += len(entries)
        elapsed = time.perf_counter() - started
        await redis.delete(names.results)
        return total / elapsed

    value = await median_of(1 if env.quick else 3, once)
    await redis.aclose()
    return [
        Row(
            "stream read + decode + ack (1 process)",
            value,
            "entries/s",
            note=f"{total:,} entries, XREADGROUP COUNT {BATCH}",
        )
    ]
