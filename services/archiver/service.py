"""Archiver stream adapter: one consumer per history stream, acknowledged after commit.

While PostgreSQL is unreachable a handler keeps retrying with back-off instead
of failing: consumption pauses, entries wait in the stream, nothing is lost.
A housekeeping loop applies retention, creates partitions ahead, ends
suppressions, expires stale alerts and trims the streams to the replay window;
a rollup loop folds newly archived hours into the hourly and daily rollups.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from schemas import AlertEvent, CheckResult, DeliveryRecord, Message, MetricSample
from services.archiver import lifecycle, retention, rollups, sqlite, trim
from services.archiver.embedded import Embedded, EmbeddedWriter
from services.archiver.settings import DATED, ArchiveConfig
from services.archiver.store import TABLES, lanes, observe, write
from shared.consumer import CommitChain, Consumer
from shared.streams import Codec, StreamNames

log = logging.getLogger(__name__)
GROUP = "archiver"
RETRY_CAP_S = 5.0
# A lock wait becomes an error (LockNotAvailable, retried like an outage) instead of
# a writer that waits forever and holds up shutdown.
LOCK_TIMEOUT = "-c lock_timeout=5000"
Clock = Callable[[], datetime]
ROLLUP_BUSY_FACTOR = 10
# A consumer's hand: a few batches (in the write, read ahead, reclaimed) at most.
HAND_MAX = 100_000
CLAIM_CHUNK = 5_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class Writer:
    """PostgreSQL connections for one table (a lane each), reopened after any failure.

    During an outage the batch stays pending in Redis. So that reclaimers (of
    other archiver processes too) do not count it as a failed delivery again and
    again and finally dead-letter it, the writer keeps re-claiming it with XCLAIM
    JUSTID, which resets its idle time without incrementing its delivery count; and
    with it every other entry in this consumer's hand (the batch read ahead).
    """

    def __init__(
        self,
        database_url: str,
        kind: type[Message],
        days: int,
        clock: Clock,
        hold: Hold | None = None,
    ) -> None:
        self.database_url, self.table, self.days, self.clock = (
            database_url,
            TABLES[kind],
            days,
            clock,
        )
        self.hold = hold
        self.retry_cap_s = min(RETRY_CAP_S, hold.every_s) if hold else RETRY_CAP_S
        self.conns: list[AsyncConnection[Any]] = []
        self.known_days: set[date] = set()  # partitions known to exist
        self.lock = asyncio.Lock()  # the reader and the reclaimer share the connections

    async def __call__(self, items: list[tuple[bytes, Any]], _pipe: Pipeline) -> None:
        async with self.lock, self._holding():
            await self._write(items)

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[None]:
        """Keep this consumer's hand fresh while a write takes long (an outage, a slow
        PostgreSQL): the batch read ahead waits on it and must not be reclaimed."""
        if self.hold is None:
            yield
            return
        task = asyncio.create_task(self.hold.keep_forever())
        try:
            yield
        finally:
            task.cancel()

    async def _write(self, items: list[tuple[bytes, Any]]) -> None:
        delay = 0.2
        while True:
            try:
                if not self.conns or any(conn.closed for conn in self.conns):
                    await self.close()
                    self.known_days.clear()
                while len(self.conns) < lanes(self.table, len(items)):
                    self.conns.append(
                        await AsyncConnection.connect(self.database_url, options=LOCK_TIMEOUT)
                    )
                started = time.perf_counter()
                outcome = await write(
                    self.conns,
                    self.table,
                    items,
                    today=self.clock().date(),
                    retention_days=self.days,
                    known_days=self.known_days,
                )
                observe(self.table.name, outcome, time.perf_counter() - started)
                log.debug("%s: %s", self.table.name, outcome)
                return
            except psycopg.OperationalError as exc:
                log.warning(
                    "%s: PostgreSQL unavailable (%s); retrying in %.1fs",
                    self.table.name,
                    exc,
                    delay,
                )
                await self.close()
                await asyncio.sleep(delay)
                delay = min(self.retry_cap_s, delay * 2)

    async def close(self) -> None:
        conns, self.conns = self.conns, []
        for conn in conns:
            await conn.close()


class Hold:
    """Keeps a consumer's pending entries on a stream fresh while they wait for PostgreSQL."""

    def __init__(self, redis: Redis, stream: str, consumer: str, every_s: float) -> None:
        self.redis, self.stream, self.consumer, self.every_s = redis, stream, consumer, every_s

    async def keep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.keep()

    async def keep(self) -> None:
        """Reset the idle time of every entry pending to this consumer (its hand: the
        batch being written, the one read ahead, a reclaimed one)."""
        try:
            pending = await self.redis.xpending_range(
                self.stream, GROUP, "-", "+", HAND_MAX, consumername=self.consumer
            )
            claim: list[Any] = [p["message_id"] for p in pending]
            for i in range(0, len(claim), CLAIM_CHUNK):
                chunk = claim[i : i + CLAIM_CHUNK]
                await self.redis.xclaim(self.stream, GROUP, self.consumer, 0, chunk, justid=True)
        except RedisError as exc:
            log.warning("%s: cannot refresh pending entries: %s", self.stream, exc)


class Archiver:
    def __init__(
        self,
        database_url: str,
        names: StreamNames,
        archive: ArchiveConfig | None = None,
        retention_days: int = 30,
        *,
        redis: Redis | None = None,
        clock: Clock = utcnow,
        consumer_name: str = "archiver",
        reclaim_idle_ms: int = 60_000,
        batch_size: int | None = None,
    ) -> None:
        """``batch_size``: entries per read of the results and metrics streams, which are
        then read one batch ahead (None: as the other streams, not ahead)."""
        self.database_url, self.names, self.redis, self.clock = database_url, names, redis, clock
        self.batch_size = batch_size
        self.acks = {s: CommitChain(s) for s in (names.results, names.metrics)}
        self.archive = archive or ArchiveConfig()
        self.days = {t: self.archive.days(t, retention_days) for t in DATED}
        streams = {
            CheckResult: names.results,
            MetricSample: names.metrics,
            AlertEvent: names.alerts,
            DeliveryRecord: names.deliveries,
        }
        every_s = reclaim_idle_ms / 1000 / 4  # refresh well within the reclaimer's idle time
        # sqlite:///path: the embedded single-machine store; anything else is PostgreSQL.
        self.embedded = Embedded(database_url) if sqlite.is_sqlite(database_url) else None
        self.writers: dict[type[Message], Writer | EmbeddedWriter] = {}
        for kind, table in TABLES.items():
            hold = Hold(redis, streams[kind], consumer_name, every_s) if redis else None
            days = self.days[table.name]
            self.writers[kind] = (
                EmbeddedWriter(self.embedded, kind, days, clock, hold)
                if self.embedded
                else Writer(database_url, kind, days, clock, hold)
            )

    def consumers(self) -> list[Consumer[Any]]:
        n, w = self.names, self.writers
        return [
            self._bulk(Consumer(n.results, GROUP, Codec(CheckResult), w[CheckResult])),
            self._bulk(Consumer(n.metrics, GROUP, Codec(MetricSample), w[MetricSample])),
            Consumer(n.alerts, GROUP, Codec(AlertEvent), w[AlertEvent]),
            Consumer(n.deliveries, GROUP, Codec(DeliveryRecord), w[DeliveryRecord]),
        ]

    def _bulk(self, consumer: Consumer[Any]) -> Consumer[Any]:
        """The high-volume streams: large batches, read ahead, acknowledged in order.
        Large enough batches are split over the store's COPY lanes."""
        if self.batch_size is None:
            return consumer
        ack = self.acks[consumer.stream].submit
        return dataclasses.replace(consumer, submit=ack, batch_size=self.batch_size)

    @property
    def streams(self) -> list[str]:
        n = self.names
        return [n.results, n.metrics, n.alerts, n.deliveries]

    async def housekeep(self, *, dry_run: bool = False) -> tuple[retention.Plan, list[trim.Trim]]:
        """One round of retention, lifecycle expiry and stream trimming."""
        now = self.clock()
        ttl = timedelta(seconds=self.archive.alert_ttl)
        if self.embedded is not None:
            todo = await self.embedded.housekeep(self.days, now, ttl, dry_run=dry_run)
        else:
            todo = await self._housekeep_postgres(now, ttl, dry_run)
        trims: list[trim.Trim] = []
        if self.redis is not None:
            window_ms = int(self.archive.replay_window * 1000)
            now_ms = int(now.timestamp() * 1000)
            trims = await trim.trim(self.redis, self.streams, now_ms, window_ms, dry_run=dry_run)
        return todo, trims

    async def _housekeep_postgres(
        self, now: datetime, ttl: timedelta, dry_run: bool
    ) -> retention.Plan:
        async with await AsyncConnection.connect(
            self.database_url, autocommit=True, options=LOCK_TIMEOUT
        ) as conn:
            if not dry_run:
                await rollups.refresh(conn)  # before their raw rows may be dropped
            todo = await retention.plan(conn, self.days, now, self.archive.partitions_ahead)
            if not dry_run:
                await retention.apply(conn, todo, now)
                await lifecycle.housekeep(conn, now, ttl)
        return todo

    async def housekeep_forever(self) -> None:
        while True:
            try:
                todo, trims = await self.housekeep()
                log.info("housekeeping: %s; trimmed %s", todo.lines(), trims)
            except (psycopg.Error, sqlite3.Error, RedisError) as exc:
                log.warning("housekeeping failed, retrying next round: %s", exc)
            await asyncio.sleep(self.archive.prune_every)

    async def roll_up(self) -> int:
        """Fold the hours writers noted into the rollups; returns how many hours."""
        if self.embedded is not None:
            return await self.embedded.run(sqlite.refresh)
        async with await AsyncConnection.connect(self.database_url, options=LOCK_TIMEOUT) as conn:
            return await rollups.refresh(conn)

    async def roll_up_forever(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                await self.roll_up()
            except (psycopg.Error, sqlite3.Error) as exc:
                log.warning("rolling up failed, retrying next round: %s", exc)
            # A refresh recomputes whole hours: at high volume it grows, and rolling up
            # then waits ten times as long, so it never takes more than a tenth of the time.
            took = time.perf_counter() - started
            await asyncio.sleep(max(self.archive.rollup_every, ROLLUP_BUSY_FACTOR * took))

    async def close(self) -> None:
        for ack in self.acks.values():
            await ack.settle()  # written batches get acknowledged before the clients go
        for writer in self.writers.values():
            await writer.close()
