"""The questions and actions of the API and the CLI, on either store: one object
whatever ``VIGIL_DATABASE_URL`` names (PostgreSQL, or ``sqlite:///path``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from services.archiver import lifecycle, queries, sqlite, sqlite_alerts
from services.archiver.embedded import Embedded
from services.archiver.lifecycle import Alert
from services.archiver.patterns import Patterns


class History:
    """Exactly one of ``conn`` (PostgreSQL) and ``embedded`` (SQLite) is set."""

    def __init__(
        self, conn: AsyncConnection[Any] | None = None, embedded: Embedded | None = None
    ) -> None:
        self.conn, self.embedded = conn, embedded

    async def uptime(
        self,
        level: queries.Level,
        window: timedelta,
        now: datetime,
        *,
        tenant: str | None = None,
        service: str | None = None,
    ) -> list[queries.Uptime]:
        if self.embedded is not None:
            kw = {"tenant": tenant, "service": service}
            return await self.embedded.run(sqlite.uptime, level, window, now, **kw)
        assert self.conn is not None
        return await queries.uptime(self.conn, level, window, now, tenant=tenant, service=service)

    async def latency(
        self, tenant: str, service: str, check: str, since: datetime, until: datetime,
        step: timedelta = timedelta(hours=1),
    ) -> list[queries.LatencyPoint]:  # fmt: skip
        if self.embedded is not None:
            args = (tenant, service, check, since, until, step)
            return await self.embedded.run(sqlite.latency, *args)
        assert self.conn is not None
        return await queries.latency(self.conn, tenant, service, check, since, until, step)

    async def timeline(
        self, since: datetime, until: datetime, *, tenant: str | None = None
    ) -> list[queries.TimelineEntry]:
        if self.embedded is not None:
            return await self.embedded.run(sqlite_alerts.timeline, since, until, tenant=tenant)
        assert self.conn is not None
        return await queries.timeline(self.conn, since, until, tenant=tenant)

    async def patterns(
        self, since: datetime, until: datetime, *, tenant: str | None = None
    ) -> Patterns:
        if self.embedded is not None:
            return await self.embedded.run(sqlite_alerts.patterns, since, until, tenant=tenant)
        assert self.conn is not None
        return await queries.patterns(self.conn, since, until, tenant=tenant)

    async def act(
        self, alert_id: int, to: str, *, by: str, note: str = "", now: datetime,
        until: datetime | None = None, publish: lifecycle.Publish | None = None,
    ) -> Alert:  # fmt: skip
        """Move an alert (``lifecycle.act``): acknowledged, resolved, suppressed.

        On SQLite an acknowledgement is published after its commit, not before: a
        failed publish leaves it acknowledged here, and acking again is refused."""
        if self.embedded is not None:
            alert = await self.embedded.run(
                sqlite_alerts.act, alert_id, to, by=by, note=note, now=now, until=until
            )
            if publish is not None and to == "acknowledged":
                labels = await self.embedded.run(sqlite_alerts.labels, alert_id)
                await publish(lifecycle.acknowledged_event(alert, labels, by, note, now))
            return alert
        assert self.conn is not None
        return await lifecycle.act(
            self.conn, alert_id, to, by=by, note=note, now=now, until=until, publish=publish
        )


@asynccontextmanager
async def open_history(url: str) -> AsyncIterator[History]:
    if sqlite.is_sqlite(url):
        embedded = Embedded(url)
        try:
            yield History(embedded=embedded)
        finally:
            await embedded.close()
        return
    async with await AsyncConnection.connect(url) as conn:
        yield History(conn=conn)
