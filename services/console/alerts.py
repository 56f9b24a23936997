"""Alerts as the API and the dashboard read them: filtered pages, and one alert with its
timeline and deliveries. Changes go through ``services.archiver.lifecycle``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from services.archiver.lifecycle import Alert

_COLUMNS = ", ".join(Alert.__slots__)
# How long after an alert resolved its last deliveries (the resolve notice) may land.
_SLACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Every field narrows the list; None means any. ``since``/``until`` bound the start."""

    tenant: str | None = None
    state: str | None = None
    severity: str | None = None
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0

    def where(self) -> tuple[str, dict[str, Any]]:
        tests = {
            "tenant": "tenant = %(tenant)s",
            "state": "state = %(state)s",
            "severity": "severity = %(severity)s",
            "service": "service = %(service)s",
            "since": "started_at >= %(since)s",
            "until": "started_at < %(until)s",
        }
        values = {k: getattr(self, k) for k in tests}
        used = [sql for k, sql in tests.items() if values[k] is not None]
        return (" WHERE " + " AND ".join(used)) if used else "", values


@dataclass(frozen=True, slots=True)
class AlertPage:
    items: list[Alert]
    total: int
    limit: int
    offset: int


async def page(conn: AsyncConnection[Any], f: AlertFilter) -> AlertPage:
    """Newest first."""
    where, params = f.where()
    params |= {"limit": f.limit, "offset": f.offset}
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM alerts{where} ORDER BY started_at DESC, id DESC "
            "LIMIT %(limit)s OFFSET %(offset)s",
            params,
        )
        items = await cur.fetchall()
    total = await (await conn.execute(f"SELECT count(*) FROM alerts{where}", params)).fetchone()
    return AlertPage(items, int(total[0]) if total else 0, f.limit, f.offset)


@dataclass(frozen=True, slots=True)
class Transition:
    at: datetime
    from_state: str | None
    to_state: str
    by: str
    note: str


@dataclass(frozen=True, slots=True)
class Delivery:
    at: datetime
    channel: str
    channel_type: str
    attempt: int
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str
    alert_event_id: str


@dataclass(frozen=True, slots=True)
class AlertDetail:
    alert: Alert
    labels: dict[str, str]
    timeline: list[Transition]
    deliveries: list[Delivery]


async def visible(conn: AsyncConnection[Any], alert_id: int, tenant: str | None) -> Alert | None:
    """The alert, if it exists and the caller's tenant scope covers it."""
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
        alert = await cur.fetchone()
    if alert is None or tenant not in (None, alert.tenant):
        return None
    return alert


async def detail(
    conn: AsyncConnection[Any], alert_id: int, tenant: str | None
) -> AlertDetail | None:
    alert = await visible(conn, alert_id, tenant)
    if alert is None:
        return None
    labels = await (
        await conn.execute("SELECT labels FROM alerts WHERE id = %s", (alert_id,))
    ).fetchone()
    async with conn.cursor(row_factory=class_row(Transition)) as cur:
        await cur.execute(
            "SELECT at, from_state, to_state, by, note FROM alert_transitions "
            "WHERE alert_id = %s ORDER BY at, id",
            (alert_id,),
        )
        timeline = await cur.fetchall()
    async with conn.cursor(row_factory=class_row(Delivery)) as cur:
        await cur.execute(
            "SELECT at, channel, channel_type, attempt, outcome, status_code, latency_ms, error, "
            "alert_event_id FROM deliveries WHERE fingerprint = %s AND at >= %s "
            "AND (%s::timestamptz IS NULL OR at <= %s::timestamptz + %s::interval) "
            "ORDER BY at, attempt",
            (alert.fingerprint, alert.started_at, alert.resolved_at, alert.resolved_at, _SLACK),
        )
        deliveries = await cur.fetchall()
    return AlertDetail(alert, dict(labels[0]) if labels else {}, timeline, deliveries)
