"""Archiver stream adapter: one consumer per history stream, acknowledged after commit.

While PostgreSQL is unreachable a handler keeps retrying with back-off instead
of failing: consumption pauses, entries wait in the stream, nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg import AsyncConnection
from redis.asyncio.client import Pipeline

from schemas import AlertEvent, CheckResult, DeliveryRecord, Message
from services.archiver.store import TABLES, prune, write
from shared.consumer import Consumer
from shared.streams import Codec, StreamNames

log = logging.getLogger(__name__)
GROUP = "archiver"
PRUNE_EVERY_S = 3600.0
RETRY_CAP_S = 5.0


class Writer:
    """One PostgreSQL connection for one table, reopened after any failure."""

    def __init__(self, database_url: str, kind: type[Message]) -> None:
        self.database_url, self.table = database_url, TABLES[kind]
        self.conn: AsyncConnection[Any] | None = None

    async def __call__(self, items: list[tuple[bytes, Any]], _pipe: Pipeline) -> None:
        delay = 0.2
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = await AsyncConnection.connect(self.database_url)
                added = await write(self.conn, self.table, items)
                log.debug("%s: %d of %d rows new", self.table.name, added, len(items))
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
                delay = min(RETRY_CAP_S, delay * 2)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


class Archiver:
    def __init__(self, database_url: str, names: StreamNames, retention_days: int) -> None:
        self.database_url, self.names, self.retention_days = database_url, names, retention_days
        self.writers = [
            Writer(database_url, kind) for kind in (CheckResult, AlertEvent, DeliveryRecord)
        ]

    def consumers(self) -> list[Consumer[Any]]:
        results, alerts, deliveries = self.writers
        return [
            Consumer(self.names.results, GROUP, Codec(CheckResult), results),
            Consumer(self.names.alerts, GROUP, Codec(AlertEvent), alerts),
            Consumer(self.names.deliveries, GROUP, Codec(DeliveryRecord), deliveries),
        ]

    async def prune_forever(self) -> None:
        """Retention: drop history older than ``retention_days``, hourly."""
        while True:
            try:
                async with await AsyncConnection.connect(self.database_url) as conn:
                    deleted = await prune(conn, self.retention_days)
                log.info("retention: pruned %s", deleted)
            except psycopg.Error as exc:
                log.warning("retention: prune failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def close(self) -> None:
        for writer in self.writers:
            await writer.close()
