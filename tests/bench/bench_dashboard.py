"""Dashboard: overview, matrix and service detail latency (p95) with 30 days of 1-minute
history for 1,000 checks across 50 tenants, served by uvicorn on loopback.

The history is generated in PostgreSQL (generate_series): 30 days of hourly rollups (60
results an hour per check) and their daily rollups, which is what the pages read, plus
the last day of raw results, which is all the "recent results" table looks at. The
probe's cache holds every check's latest result; 50 alerts are open.
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver import histogram, partitions
from services.archiver.rollups import hour_of
from services.console import tokens
from services.probe.cache import latest_key_name
from shared.config import Config, parse_config
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.bench.framework import BenchEnv, Row
from tests.console_browser_support import console_server

GOAL_MS = 100.0
PREFIX = "benchdash"
SERVICES = 10  # per tenant, two checks each


def _config(tenants: int, checks_per_tenant: int) -> Config:
    lines = ["tenants:"] + [f"  - {{id: t{t:02d}}}" for t in range(tenants)] + ["checks:"]
    for t in range(tenants):
        for c in range(checks_per_tenant):
            lines.append(
                f"  - {{name: c{c:02d}, type: tcp, tenant: t{t:02d}, "
                f"service: svc{c % SERVICES}, host: 127.0.0.1, port: 9}}"
            )
    return parse_config("\n".join(lines), "bench.yaml", {})


async def _history(conn: AsyncConnection[Any], config: Config, days: int, raw_hours: int) -> None:
    now = datetime.now(UTC)
    first = hour_of(now) - timedelta(days=days)
    # 60 results an hour: latencies around 20-60 ms, one failure in 60.
    buckets = histogram.counts([20.0 + i % 40 for i in range(60)])
    await conn.execute(
        "CREATE TEMP TABLE bench_checks (tenant text, service text, check_name text)"
    )
    async with conn.cursor() as cur, cur.copy("COPY bench_checks FROM STDIN") as copy:
        for c in config.checks:
            await copy.write_row((c.tenant, c.service, c.name))
    await conn.execute(
        "INSERT INTO check_rollups SELECT c.tenant, c.service, c.check_name, h, 60, 59, 1, "
        "2340, 20, 59, %s::bigint[] FROM bench_checks c, "
        "generate_series(%s::timestamptz, %s::timestamptz, interval '1 hour') h",
        (buckets, first, hour_of(now)),
    )
    await conn.execute(
        "INSERT INTO check_rollups_daily SELECT tenant, service, check_name, "
        "date_trunc('day', hour, 'UTC'), sum(executions), sum(successes), sum(failures) "
        "FROM check_rollups WHERE tenant LIKE 't__' GROUP BY 1, 2, 3, 4"
    )
    since = now - timedelta(hours=raw_hours)
    await partitions.ensure(
        conn, "check_results", {partitions.day_of(since), partitions.day_of(now)}
    )
    await conn.execute(
        "INSERT INTO check_results (stream_id, event_id, tenant, service, check_name, tier, "
        "status, latency_ms, observed_at) SELECT md5(c.check_name || c.tenant || m::text), "
        "md5(m::text), c.tenant, c.service, c.check_name, 'core', 'healthy', "
        "20 + extract(minute FROM m), m FROM bench_checks c, "
        "generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') m",
        (since, now),
    )
    await conn.execute(
        "INSERT INTO alerts (fingerprint, started_at, rule, tenant, service, severity, title, "
        "state, updated_at) SELECT 'fp' || g, now(), 'down', 't' || lpad((g % 50)::text, 2, '0'), "
        "'svc1', 'critical', 'svc1 is down', 'active', now() FROM generate_series(1, 50) g"
    )
    await conn.commit()
    await conn.execute("ANALYZE")


async def _cache(redis: Redis, names: StreamNames, config: Config) -> None:
    now = datetime.now(UTC)
    pipe = redis.pipeline(transaction=False)
    for i, c in enumerate(config.checks):
        result = CheckResult(
            tenant=c.tenant,
            service=c.service,
            check=c.name,
            tier="core",
            status="unhealthy" if i % 97 == 0 else "healthy",
            latency_ms=20.0 + i % 40,
            observed_at=now,
        )
        pipe.set(names.key(latest_key_name(c.tenant, c.name)), encode(result)[b"data"], ex=3600)
    await pipe.execute()


async def _p95(client: httpx.AsyncClient, path: str, runs: int) -> tuple[float, float]:
    await client.get(path)  # warm: templates compiled, connections open
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    took.sort()
    return took[int(0.95 * (len(took) - 1))], statistics.median(took)


async def run(env: BenchEnv) -> list[Row]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    tenants, per_tenant = env.size(50, 5), 20
    days, raw_hours, runs = env.size(30, 2), env.size(24, 1), env.size(200, 10)
    config = _config(tenants, per_tenant)
    names = StreamNames(PREFIX)
    started = time.perf_counter()
    async with await AsyncConnection.connect(env.database_url) as conn:
        await _history(conn, config, days, raw_hours)
        _, token = await tokens.create(conn, "bench", "admin", None, "bench")
    generated = time.perf_counter() - started
    settings = Settings(env.redis_url, env.database_url, None, stream_prefix=PREFIX)
    rows = []
    async with Redis.from_url(env.redis_url) as redis:
        await _cache(redis, names, config)
        async with (
            console_server(settings, env.database_url, redis, config) as (url, _),
            httpx.AsyncClient(base_url=url, cookies={"vigil_token": token}) as client,
        ):
            size = f"{len(config.checks):,} checks, {tenants} tenants, {days} days"
            for name, path in (
                ("overview page", "/"),
                ("matrix page", "/matrix"),
                ("service detail page", "/services/t03/svc3"),
                ("health API", "/api/v1/health"),
                ("matrix API", "/api/v1/health/matrix"),
                ("service detail API", "/api/v1/health/services/t03/svc3"),
            ):
                p95, median = await _p95(client, path, runs)
                rows.append(
                    Row(
                        f"dashboard: {name} p95",
                        p95,
                        "ms",
                        goal=GOAL_MS,
                        higher_is_better=False,
                        note=f"median {median:.1f} ms; {runs} sequential requests; {size}",
                    )
                )
    rows.append(
        Row(
            "dashboard: generating the history",
            generated,
            "s",
            note=f"{len(config.checks) * days * 24:,} hourly rollups, "
            f"{len(config.checks) * raw_hours * 60:,} raw results",
        )
    )
    return rows
