"""A PostgreSQL outage pauses archiving; nothing is lost or dead-lettered; it catches up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from redis.asyncio import Redis

from services.archiver.migrate import upgrade
from services.archiver.service import GROUP, Hold
from shared.config import Config
from shared.localservers import LocalPostgres
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group
from tests.support.wait import wait_until
from tests.test_archiver import result


async def archived(url: str) -> int:
    """Rows archived, or -1 while PostgreSQL is down."""
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
            cur = await conn.execute("select count(*) from check_results")
            return int((await cur.fetchone())[0])  # type: ignore[index]
    except psycopg.OperationalError:
        return -1


@contextlib.asynccontextmanager
async def archiver_on_own_postgres(
    settings: Settings, server_dir: Path, **overrides: Any
) -> AsyncIterator[LocalPostgres]:
    """A running archiver on a PostgreSQL of its own (for the test to stop and start),
    reclaiming after 400 ms so that a reclaim would show within the test."""
    pg = LocalPostgres(server_dir / f"outage-{uuid.uuid4().hex[:6]}").start()
    try:
        upgrade(pg.url)
        settings = dataclasses.replace(
            settings, database_url=pg.url, reclaim_idle_ms=400, **overrides
        )
        stop = asyncio.Event()
        archiver = asyncio.create_task(run(settings, Config(), ["archiver"], stop))
        try:
            yield pg
        finally:
            stop.set()
            await asyncio.wait_for(archiver, 20)
    finally:
        pg.stop()


async def test_archiver_pauses_during_a_postgres_outage_and_catches_up(
    redis: Redis, settings: Settings, names: StreamNames, server_dir: Path
) -> None:
    async with archiver_on_own_postgres(settings, server_dir) as pg:
        await outage_and_recovery(redis, names, pg)


async def outage_and_recovery(redis: Redis, names: StreamNames, pg: LocalPostgres) -> None:
    now = datetime.now(UTC)
    for i in range(5):
        await redis.xadd(names.results, encode(result(i, now)))
    await wait_until(lambda: count_is(pg.url, 5), what="first rows archived")

    await asyncio.to_thread(fast_stop, pg)
    for i in range(5, 25):
        await redis.xadd(names.results, encode(result(i, now)))

    async def pending() -> int:
        return int((await redis.xpending(names.results, GROUP))["pending"])

    # The archiver holds the batch it read; the rest wait unread in the stream.
    await wait_until(lambda: pending_at_least(pending, 1), what="a batch read, not acked")
    # Absence over time can only be shown by waiting: several reclaim periods pass
    # and none of the 20 new entries is acknowledged or dead-lettered.
    await asyncio.sleep(2.0)
    assert await archived(pg.url) == -1
    [group] = await redis.xinfo_groups(names.results)
    unread = await redis.xrange(names.results, min="(" + group["last-delivered-id"].decode())
    assert await pending() + len(unread) == 20
    assert await redis.xlen(names.deadletter) == 0

    await asyncio.to_thread(pg.start)
    await wait_until(lambda: count_is(pg.url, 25), timeout=30, what="catch-up")
    await wait_until(lambda: pending_is(pending, 0), what="all acknowledged")
    assert await redis.xlen(names.deadletter) == 0


async def pending_is(pending: object, n: int) -> bool:
    return await pending() == n  # type: ignore[operator,no-any-return]


async def pending_at_least(pending: object, n: int) -> bool:
    return await pending() >= n  # type: ignore[operator,no-any-return]


async def count_is(url: str, n: int) -> bool:
    return await archived(url) == n


def fast_stop(pg: LocalPostgres) -> None:
    """SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave."""
    assert pg.proc is not None
    pg.proc.send_signal(signal.SIGINT)
    pg.proc.wait(timeout=30)
    pg.proc = None


async def test_holding_a_pending_batch_resets_its_idle_time_not_its_delivery_count(
    redis: Redis, names: StreamNames
) -> None:
    await ensure_group(redis, names.results, GROUP)
    await redis.xadd(names.results, encode(result(1, datetime.now(UTC))))
    await redis.xreadgroup(GROUP, "reader", {names.results: ">"})

    async def idle_ms() -> int:
        [p] = await redis.xpending_range(names.results, GROUP, "-", "+", 1)
        return int(p["time_since_delivered"])

    await wait_until(lambda: idle_at_least(idle_ms, 50), what="the entry to age")
    await Hold(redis, names.results, "reader", 0.1).keep()
    [p] = await redis.xpending_range(names.results, GROUP, "-", "+", 1)
    assert p["times_delivered"] == 1
    assert p["time_since_delivered"] < 50


async def idle_at_least(idle_ms: object, n: int) -> bool:
    return await idle_ms() >= n  # type: ignore[operator,no-any-return]
