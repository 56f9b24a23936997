"""The archiver on SQLite: one connection for every table, used from a worker
thread one call at a time (SQLite has one writer at a time anyway)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from redis.asyncio.client import Pipeline

from schemas import Message
from services.archiver import sqlite, sqlite_alerts
from services.archiver.retention import Plan
from services.archiver.store import TABLES, observe

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
RETRY_CAP_S = 5.0


class Keeper(Protocol):
    async def keep(self) -> None: ...


class Embedded:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()

    async def run(
        self, work: Callable[Concatenate[sqlite3.Connection, P], T], *a: P.args, **kw: P.kwargs
    ) -> T:
        async with self.lock:
            if self.db is None:
                self.db = await asyncio.to_thread(sqlite.connect, self.url)
            return await asyncio.to_thread(work, self.db, *a, **kw)

    async def housekeep(
        self, days: dict[str, int], now: datetime, ttl: timedelta, *, dry_run: bool
    ) -> Plan:
        """Roll up, then retention by DELETE, then alert expiry: ``Archiver.housekeep``."""

        def work(db: sqlite3.Connection) -> Plan:
            if not dry_run:
                sqlite.refresh(db)  # before their raw rows may be deleted
            todo = sqlite.plan(db, days, now)
            if not dry_run:
                sqlite.apply(db, todo, now)
                sqlite_alerts.housekeep(db, now, ttl)
            return todo

        return await self.run(work)

    async def close(self) -> None:
        async with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None


class EmbeddedWriter:
    """``service.Writer`` for SQLite: a locked or busy database is retried, the batch
    held pending meanwhile, never failed (which would dead-letter good entries)."""

    def __init__(
        self,
        embedded: Embedded,
        kind: type[Message],
        days: int,
        clock: Callable[[], datetime],
        hold: Keeper | None = None,
    ) -> None:
        self.embedded, self.table, self.days, self.clock = embedded, TABLES[kind], days, clock
        self.hold = hold

    async def __call__(self, items: list[tuple[bytes, Any]], _pipe: Pipeline) -> None:
        delay = 0.2
        while True:
            started = time.perf_counter()
            today: date = self.clock().date()
            try:
                outcome = await self.embedded.run(
                    sqlite.write, self.table, items, today=today, retention_days=self.days
                )
            except sqlite3.OperationalError as exc:
                log.warning("%s: SQLite busy (%s); retrying in %.1fs", self.table.name, exc, delay)
                if self.hold is not None:
                    await self.hold.keep()  # this consumer's whole hand
                await asyncio.sleep(delay)
                delay = min(RETRY_CAP_S, delay * 2)
                continue
            observe(self.table.name, outcome, time.perf_counter() - started)
            return

    async def close(self) -> None:
        await self.embedded.close()
