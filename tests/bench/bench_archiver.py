"""Archiver: rows/s into the partitioned, indexed history (the write path alone, then the
service end to end from the stream), then rolled up, the time to drop one day of history,
and uptime queries over 30 days of rollups."""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver import histogram, partitions, queries, rollups
from services.archiver.service import GROUP
from services.archiver.store import LANES, RESULTS, write
from shared.config import Config
from shared.runner import run as run_services
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.bench.framework import BenchEnv, Row

BATCH = 5_000
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


async def _ingest(env: BenchEnv) -> list[Row]:
    total, checks = env.size(200_000, 5_000), 1_000
    base = NOW - timedelta(hours=1)
    # Entry ids as Redis makes them (milliseconds-sequence): they grow in text order too,
    # so the key's index is appended to, as in production. ("1-0" … "200000-0" did not.)
    first_ms = int(base.timestamp() * 1000)
    items = [(f"{first_ms + i * 10}-0".encode(), _result(i, checks, base)) for i in range(total)]
    conns = [await AsyncConnection.connect(env.database_url) for _ in range(LANES)]
    try:
        known: set = set()
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            await write(
                conns,
                RESULTS,
                items[start : start + BATCH],
                today=NOW.date(),
                retention_days=30,
                known_days=known,
            )
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        hours = await rollups.refresh(conns[0])
        rolled = time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()
    note = (
        f"{total:,} rows, {checks:,} checks, COPY batches of {BATCH:,} over {LANES} "
        "connections, one process"
    )
    return [
        Row(
            "archiver: check results into partitioned, indexed table (hours noted for rollups)",
            total / elapsed,
            "rows/s",
            goal=100_000,
            note=note,
        ),
        Row(
            "archiver: hourly + daily rollups recomputed from those rows (background)",
            total / rolled,
            "rows/s",
            note=f"{hours} hours, {total:,} rows, one refresh",
        ),
    ]


def _result(i: int, checks: int, base: datetime) -> CheckResult:
    return CheckResult(
        tenant="acme",
        service=f"svc{i % checks // 50}",
        check=f"c{i % checks}",
        tier="core",
        status="healthy" if i % 17 else "unhealthy",
        latency_ms=float(i % 500),
        observed_at=base + timedelta(milliseconds=i * 10),
    )


async def end_to_end(
    redis_url: str,
    database_url: str,
    total: int,
    batch_size: int | None = None,
    profile: cProfile.Profile | None = None,
) -> tuple[float, float, int]:
    """Entries XADDed to the results stream first, then the archiver service (the runner,
    as ``vigil run archiver`` starts it, default settings) drains them into the table.
    Returns rows/s and this process's CPU µs per row, from the first read to the last
    acknowledgement (which follows its commit), and the batch size the service read."""
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    base, checks = NOW - timedelta(minutes=30), 1_000
    redis = Redis.from_url(redis_url)
    for start in range(0, total, 5_000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(total, start + 5_000)):
            pipe.xadd(names.results, encode(_result(i, checks, base)))  # type: ignore[arg-type]
        await pipe.execute()
    env = {
        "VIGIL_REDIS_URL": redis_url,
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_STREAM_PREFIX": names.prefix,
        "VIGIL_OPS_PORT": "off",
        "VIGIL_CONSOLE_PORT": "off",
    }
    if batch_size is not None:
        env["VIGIL_ARCHIVER_BATCH_SIZE"] = str(batch_size)
    settings = Settings.from_env(env)
    stop = asyncio.Event()
    service = asyncio.create_task(run_services(settings, Config(), ["archiver"], stop))
    try:
        await _poll(redis, names.results, lambda g: g["entries-read"] or g["pending"])
        started, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        await _poll(redis, names.results, lambda g: g["entries-read"] == total and not g["pending"])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profile:
            profile.disable()
    finally:
        stop.set()
        await service
        await redis.delete(names.results)
        await redis.aclose()
    return total / elapsed, cpu / total * 1e6, settings.archiver_batch_size


async def _poll(redis: Redis, stream: str, done: object) -> None:
    """Until ``done`` holds for the archiver's group on ``stream``; 5 ms apart."""
    while True:
        groups = await redis.xinfo_groups(stream)
        group = next((g for g in groups if g["name"] == GROUP.encode()), None)
        if group is not None and done(group):  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)


async def _prune(env: BenchEnv) -> Row:
    rows = env.size(1_000_000, 20_000)
    day = (NOW - timedelta(days=40)).date()
    async with await AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        await partitions.ensure(conn, "check_results", [day])
        start = partitions.day_start(day)
        await conn.execute(
            "INSERT INTO check_results (stream_id, event_id, tenant, service, check_name, tier, "
            "status, latency_ms, observed_at) SELECT 'p' || g || '-0', 'e', 'acme', "
            "'svc' || (g %% 20), 'c' || (g %% 1000), 'core', 'healthy', 1.0, "
            "%s + (g * interval '86399 milliseconds' / %s) FROM generate_series(0, %s - 1) g",
            (start, rows, rows),
        )
        await conn.execute("ANALYZE check_results")
        name = partitions.partition_name("check_results", day)
        started = time.perf_counter()
        await partitions.drop(conn, "check_results", name)
        elapsed_ms = (time.perf_counter() - started) * 1000
    return Row(
        "archiver: prune one day (DETACH CONCURRENTLY + DROP)",
        elapsed_ms,
        "ms",
        goal=100,
        higher_is_better=False,
        note=f"a day of {rows:,} rows",
    )


async def _uptime(env: BenchEnv) -> list[Row]:
    checks, hours = env.size(1_000, 100), env.size(720, 48)
    runs = env.size(50, 5)
    buckets = [0] * histogram.SIZE
    buckets[40] = 60
    async with await AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM check_rollups")
        await conn.execute(
            "INSERT INTO check_rollups SELECT 'bench', 'svc' || (c / 50), 'c' || c, "
            "%s - h * interval '1 hour', 60, 60 - (c + h) %% 3, (c + h) %% 3, 600, 5, 20, %s "
            "FROM generate_series(0, %s - 1) c, generate_series(0, %s - 1) h",
            (NOW, buckets, checks, hours),
        )
        await conn.execute("DELETE FROM check_rollups_daily")
        await conn.execute(
            "INSERT INTO check_rollups_daily SELECT tenant, service, check_name, "
            "date_trunc('day', hour, 'UTC'), sum(executions), sum(successes), sum(failures) "
            "FROM check_rollups GROUP BY 1, 2, 3, 4"
        )
        await conn.execute("VACUUM ANALYZE check_rollups")
        await conn.execute("VACUUM ANALYZE check_rollups_daily")
        window = queries.WINDOWS["30d"]

        async def timed(**kw: object) -> float:
            started = time.perf_counter()
            await queries.uptime(conn, window=window, now=NOW, **kw)  # type: ignore[arg-type]
            return (time.perf_counter() - started) * 1000

        one = [await timed(level="check", tenant="bench", service="svc1") for _ in range(runs)]
        every = [await timed(level="check", tenant="bench") for _ in range(runs)]
    note = f"{checks:,} checks x {hours} hourly rollups (1-min interval), {runs} runs"
    return [
        Row("uptime 30 d, one service (50 checks): p95", _p95(one), "ms", 100, False, note),
        Row(f"uptime 30 d, all {checks:,} checks: p95", _p95(every), "ms", 100, False, note),
    ]


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


async def _service(env: BenchEnv) -> Row:
    total = env.size(200_000, 5_000)
    rate, cpu_us, batch = await end_to_end(env.redis_url, env.database_url, total)
    profile = cProfile.Profile()
    await end_to_end(env.redis_url, env.database_url, total // 4, profile=profile)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
    print(out.getvalue())
    return Row(
        "archiver service end to end: stream -> table",
        rate,
        "rows/s",
        goal=100_000,
        note=f"{total:,} check results in the stream first, the service as run (batches of "
        f"{batch:,}, read ahead), first read to last ack; {cpu_us:.1f} µs CPU/row in-process",
    )


async def run(env: BenchEnv) -> list[Row]:
    return [*await _ingest(env), await _service(env), await _prune(env), *await _uptime(env)]
