"""PostgreSQL, Redis, stream-lag and queue-depth monitors against real servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from services.probe.monitors import ProbeContext
from services.probe.monitors.postgres import PostgresCheck
from services.probe.monitors.queue import QueueCheck
from services.probe.monitors.redis import RedisCheck
from services.probe.monitors.stream_lag import StreamLagCheck
from services.probe.service import run_check
from shared.localservers import free_port
from shared.streams import StreamNames
from tests.support.wait import wait_until

COMMON = {"name": "c", "tenant": "t", "service": "s"}


@pytest_asyncio.fixture
async def ctx(redis: Redis, names: StreamNames) -> AsyncIterator[ProbeContext]:
    context = ProbeContext(redis, names)
    yield context
    await context.aclose()


async def test_postgres(ctx: ProbeContext, database_url: str) -> None:
    ok = await run_check(PostgresCheck(**COMMON, dsn=database_url), ctx)
    assert ok.status == "healthy", ok.details
    assert ok.details["connections"] >= 1 and ok.details["max_connections"] > 1
    crowded = await run_check(
        PostgresCheck(**COMMON, dsn=database_url, max_connections_ratio=0.0), ctx
    )
    assert crowded.status == "degraded" and "connections" in crowded.details["error"]


async def test_postgres_long_running_query(ctx: ProbeContext, database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as busy:
        sleeper = asyncio.create_task(busy.execute("SELECT pg_sleep(3)"))
        check = PostgresCheck(**COMMON, dsn=database_url, max_query_seconds=0.2)
        found = []

        async def slow_query_seen() -> bool:
            found.append(await run_check(check, ctx))
            return found[-1].status == "degraded"

        await wait_until(slow_query_seen, 5, "the long query to be reported")
        sleeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
            await sleeper
    assert "a query running" in found[-1].details["error"]
    assert found[-1].details["longest_query_s"] >= 0.2


async def test_postgres_down(ctx: ProbeContext) -> None:
    dsn = f"postgresql://vigil:hunter22@127.0.0.1:{free_port()}/x"
    result = await run_check(PostgresCheck(**COMMON, dsn=dsn, timeout=2), ctx)
    assert result.status == "unhealthy" and "postgres" in result.details["error"]
    assert "hunter22" not in str(result.details)


async def test_redis(ctx: ProbeContext, redis_server_url: str) -> None:
    ok = await run_check(RedisCheck(**COMMON, url=redis_server_url), ctx)
    assert ok.status == "healthy" and ok.details["connected_clients"] >= 1
    busy = await run_check(
        RedisCheck(**COMMON, url=redis_server_url, max_clients=0, max_evicted_keys=-1), ctx
    )
    assert busy.status == "degraded"
    assert "clients" in busy.details["error"] and "evicted" in busy.details["error"]
    down = await run_check(RedisCheck(**COMMON, url=f"redis://127.0.0.1:{free_port()}/0"), ctx)
    assert down.status == "unhealthy" and "redis" in down.details["error"]


@pytest.mark.parametrize("reply", [b"HTTP/1.1 200 OK\r\n\r\n", b"+PONG\r\n$99999\r\nx", None])
async def test_redis_garbage_or_hang(ctx: ProbeContext, reply: bytes | None) -> None:
    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        if reply is None:
            await asyncio.sleep(3)  # hang
        else:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(server_side, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_check(
            RedisCheck(**COMMON, url=f"redis://127.0.0.1:{port}/0", timeout=0.5), ctx
        )
    assert result.status == "unhealthy", result.details
    assert result.latency_ms < 2000


async def test_stream_lag(ctx: ProbeContext, redis: Redis, redis_server_url: str) -> None:
    stream = f"{ctx.names.prefix}:lagging"
    for i in range(5):
        await redis.xadd(stream, {"data": str(i)})
    await redis.xgroup_create(stream, "g", id="0")
    await redis.xreadgroup("g", "c1", {stream: ">"}, count=2)  # 2 pending, 3 unread

    def lag(**kw: object) -> StreamLagCheck:
        return StreamLagCheck(**COMMON, url=redis_server_url, stream=stream, group="g", **kw)  # type: ignore[arg-type]

    ok = await run_check(lag(), ctx)
    behind = await run_check(lag(max_lag=2), ctx)
    stuck = await run_check(lag(max_pending=1), ctx)
    assert ok.status == "healthy" and ok.details == {"lag": 3, "pending": 2}
    assert behind.status == "degraded" and behind.details["error"] == "lag 3"
    assert stuck.status == "degraded" and stuck.details["error"] == "2 pending"
    no_group = await run_check(
        StreamLagCheck(**COMMON, url=redis_server_url, stream=stream, group="nope"), ctx
    )
    no_stream = await run_check(
        StreamLagCheck(**COMMON, url=redis_server_url, stream=stream + "x", group="g"), ctx
    )
    assert no_group.status == "unhealthy" and "no group 'nope'" in no_group.details["error"]
    assert no_stream.status == "unhealthy"


async def test_queue_depth(ctx: ProbeContext, redis: Redis, redis_server_url: str) -> None:
    key = f"{ctx.names.prefix}:queue:default"
    await redis.rpush(key, *range(5))

    def depth(**kw: object) -> QueueCheck:
        return QueueCheck(**COMMON, url=redis_server_url, key=key, **kw)  # type: ignore[arg-type]

    assert (await run_check(depth(), ctx)).details == {"depth": 5}
    assert (await run_check(depth(warn_depth=3), ctx)).status == "degraded"
    assert (await run_check(depth(warn_depth=3, max_depth=4), ctx)).status == "unhealthy"
    empty = await run_check(QueueCheck(**COMMON, url=redis_server_url, key=key + "x"), ctx)
    assert empty.status == "healthy" and empty.details == {"depth": 0}
