"""Batched, idempotent writes of history rows: COPY into a temporary table, then
``INSERT … ON CONFLICT DO NOTHING`` keyed on the stream entry id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from schemas import AlertEvent, CheckResult, DeliveryRecord, Message


@dataclass(frozen=True, slots=True)
class Table:
    """A history table, its columns and how one message becomes one row."""

    name: str
    columns: tuple[str, ...]
    row: Callable[[bytes, Any], Sequence[Any]]


def _json(value: dict[str, Any]) -> Jsonb:
    return Jsonb(value, dumps=lambda v: msgspec.json.encode(v).decode())


RESULTS = Table(
    "check_results",
    (
        "stream_id",
        "event_id",
        "tenant",
        "service",
        "check_name",
        "tier",
        "status",
        "latency_ms",
        "details",
        "observed_at",
    ),
    lambda sid, r: (
        sid.decode(),
        r.event_id,
        r.tenant,
        r.service,
        r.check,
        r.tier,
        r.status,
        r.latency_ms,
        _json(r.details),
        r.observed_at,
    ),
)
ALERTS = Table(
    "alert_events",
    (
        "stream_id",
        "event_id",
        "fingerprint",
        "rule",
        "tenant",
        "service",
        "severity",
        "state",
        "title",
        "message",
        "value",
        "threshold",
        "labels",
        "started_at",
        "ended_at",
        "source",
    ),
    lambda sid, a: (
        sid.decode(),
        a.event_id,
        a.fingerprint,
        a.rule,
        a.tenant,
        a.service,
        a.severity,
        a.state,
        a.title,
        a.message,
        a.value,
        a.threshold,
        _json(a.labels),
        a.started_at,
        a.ended_at,
        a.source,
    ),
)
DELIVERIES = Table(
    "deliveries",
    (
        "stream_id",
        "event_id",
        "alert_event_id",
        "fingerprint",
        "tenant",
        "channel",
        "channel_type",
        "attempt",
        "outcome",
        "status_code",
        "latency_ms",
        "error",
        "at",
    ),
    lambda sid, d: (
        sid.decode(),
        d.event_id,
        d.alert_event_id,
        d.fingerprint,
        d.tenant,
        d.channel,
        d.channel_type,
        d.attempt,
        d.outcome,
        d.status_code,
        d.latency_ms,
        d.error,
        d.at,
    ),
)
TABLES: dict[type[Message], Table] = {
    CheckResult: RESULTS,
    AlertEvent: ALERTS,
    DeliveryRecord: DELIVERIES,
}


async def write(
    conn: AsyncConnection[Any], table: Table, items: Sequence[tuple[bytes, Any]]
) -> int:
    """Write one batch in one transaction; returns how many rows were new."""
    cols = ", ".join(table.columns)
    staging = f"staging_{table.name}"
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
                for entry_id, message in items:
                    await copy.write_row(table.row(entry_id, message))
            await cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {staging} "
                "ON CONFLICT (stream_id) DO NOTHING"
            )
            return cur.rowcount


async def prune(conn: AsyncConnection[Any], days: int) -> dict[str, int]:
    """Delete history older than ``days``; returns rows deleted per table."""
    deleted = {}
    for table, column in (
        ("check_results", "observed_at"),
        ("alert_events", "started_at"),
        ("deliveries", "at"),
    ):
        async with conn.transaction():
            cur = await conn.execute(
                f"DELETE FROM {table} WHERE {column} < now() - make_interval(days => %s)",
                (days,),
            )
            deleted[table] = cur.rowcount
    return deleted
