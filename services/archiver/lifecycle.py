"""Alert lifecycle: active -> acknowledged -> resolved, plus suppressed (until a
time) and expired (auto-resolved after a TTL without news).

``next_state`` is the pure rule; the functions below apply it in PostgreSQL and
record every transition (who, when, note) in ``alert_transitions`` and, for
actions taken by people or housekeeping, in ``audit_log``. The API and the CLI
call these functions; they pass ``publish`` so that an acknowledgement also
reaches the notification channels (PagerDuty acknowledge, a short message
elsewhere) as an ``acknowledged`` AlertEvent on the alerts stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import AlertEvent, Category, Severity, stable_id
from shared.errors import AlertActionError
from shared.streams import StreamNames, encode

State = Literal["active", "acknowledged", "suppressed", "resolved", "expired"]
OPEN: frozenset[str] = frozenset({"active", "acknowledged", "suppressed"})
# target state -> states it may be reached from
_FROM: dict[str, frozenset[str]] = {
    "acknowledged": frozenset({"active", "suppressed"}),
    "suppressed": frozenset({"active", "acknowledged"}),
    "active": frozenset({"suppressed"}),  # a suppression ended
    "resolved": OPEN,
    "expired": OPEN,
}
SYSTEM = "system"
Publish = Callable[[AlertEvent], Awaitable[object]]  # puts an AlertEvent on the alerts stream


def stream_publisher(redis: Redis, names: StreamNames) -> Publish:
    """``publish`` for ``act``: one XADD to the alerts stream."""

    async def publish(event: AlertEvent) -> object:
        try:
            return await redis.xadd(names.alerts, encode(event))
        except (RedisError, OSError) as exc:
            raise AlertActionError(
                f"cannot publish the acknowledgement on {names.alerts} ({exc}); nothing changed"
            ) from exc

    return publish


def next_state(current: str, target: str) -> str:
    """``target`` if the lifecycle allows it from ``current``, else AlertActionError."""
    if current not in _FROM.get(target, frozenset()):
        raise AlertActionError(f"cannot move an alert from {current} to {target}")
    return target


def changes(current: str, to: str, by: str, at: datetime, until: datetime | None) -> dict[str, Any]:
    """The columns of an alert that moving it from ``current`` to ``to`` sets."""
    sets: dict[str, Any] = {"state": next_state(current, to), "updated_at": at}
    if to == "acknowledged":
        sets |= {"acknowledged_at": at, "acknowledged_by": by}
    elif to in ("resolved", "expired"):
        sets |= {"resolved_at": at, "resolved_by": by}
    if to == "suppressed":
        sets["suppressed_until"] = until
    return sets


def check_action(to: str, by: str, now: datetime, until: datetime | None) -> None:
    """Refuse an action by nobody, or a suppression that would already be over."""
    if not by:
        raise AlertActionError("say who acts (--by)")
    if to == "suppressed" and (until is None or until <= now):
        raise AlertActionError("a suppression needs an end time in the future")


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    fingerprint: str
    started_at: datetime
    rule: str
    tenant: str
    service: str
    severity: str
    title: str
    state: str
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    suppressed_until: datetime | None
    category: str | None  # last: the SQLite adapter builds an Alert from a row in this order


_COLUMNS = ", ".join(Alert.__slots__)


async def get(conn: AsyncConnection[Any], alert_id: int, *, lock: bool = False) -> Alert:
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE id = %s" + (" FOR UPDATE" if lock else ""),
            (alert_id,),
        )
        alert = await cur.fetchone()
    if alert is None:
        raise AlertActionError(f"no alert with id {alert_id}")
    return alert


async def _move(
    conn: AsyncConnection[Any],
    alert: Alert,
    to: str,
    by: str,
    note: str,
    at: datetime,
    until: datetime | None = None,
    audit: bool = True,
) -> None:
    sets = changes(alert.state, to, by, at, until)
    assignments = ", ".join(f"{k} = %({k})s" for k in sets)
    await conn.execute(
        f"UPDATE alerts SET {assignments} WHERE id = %(id)s", sets | {"id": alert.id}
    )
    await _transition(conn, alert.id, alert.state, to, by, note, at)
    if audit:
        details = {"from": alert.state, "note": note}
        if until is not None:
            details["until"] = until.isoformat()
        await log_audit(conn, at, by, to, f"alert:{alert.id}", details)


async def _transition(
    conn: AsyncConnection[Any],
    alert_id: int,
    from_state: str | None,
    to: str,
    by: str,
    note: str,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO alert_transitions (alert_id, from_state, to_state, at, by, note) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, from_state, to, at, by, note),
    )


async def log_audit(
    conn: AsyncConnection[Any],
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES (%s, %s, %s, %s, %s)",
        (at, actor, action, target, Jsonb(details)),
    )


async def act(
    conn: AsyncConnection[Any],
    alert_id: int,
    to: str,
    *,
    by: str,
    note: str = "",
    now: datetime,
    until: datetime | None = None,
    publish: Publish | None = None,
) -> Alert:
    """Move one alert to ``to`` on behalf of ``by``; returns the alert afterwards.

    An acknowledgement is also handed to ``publish`` before the commit: a failed
    publish undoes it, and the event's id is stable, so trying again is safe."""
    check_action(to, by, now, until)
    async with conn.transaction():
        alert = await get(conn, alert_id, lock=True)
        await _move(conn, alert, to, by, note, now, until)
        if publish is not None and to == "acknowledged":
            await publish(await _acknowledged_event(conn, alert, by, note, now))
    return await get(conn, alert_id)


async def _acknowledged_event(
    conn: AsyncConnection[Any], alert: Alert, by: str, note: str, at: datetime
) -> AlertEvent:
    found = await conn.execute("SELECT labels FROM alerts WHERE id = %s", (alert.id,))
    labels = (await found.fetchone() or [{}])[0]
    return acknowledged_event(alert, labels or {}, by, note, at)


def acknowledged_event(
    alert: Alert, labels: dict[str, str], by: str, note: str, at: datetime
) -> AlertEvent:
    """The alerts-stream event that tells channels (PagerDuty's acknowledge) who acked."""
    return AlertEvent(
        event_id=stable_id("acknowledged", alert.fingerprint, alert.started_at.isoformat()),
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        tenant=alert.tenant,
        service=alert.service,
        severity=cast(Severity, alert.severity),
        category=cast(Category | None, alert.category),
        state="acknowledged",
        title=alert.title,
        message=f"Acknowledged by {by}" + (f": {note}" if note else ""),
        labels=labels,
        started_at=alert.started_at,
        acknowledged_by=by,
        acknowledged_at=at,
    )


async def acknowledge(
    conn: AsyncConnection[Any],
    alert_id: int,
    *,
    by: str,
    note: str = "",
    now: datetime,
    publish: Publish | None = None,
) -> Alert:
    return await act(conn, alert_id, "acknowledged", by=by, note=note, now=now, publish=publish)


async def resolve(
    conn: AsyncConnection[Any], alert_id: int, *, by: str, note: str = "", now: datetime
) -> Alert:
    return await act(conn, alert_id, "resolved", by=by, note=note, now=now)


async def suppress(
    conn: AsyncConnection[Any],
    alert_id: int,
    *,
    by: str,
    until: datetime,
    note: str = "",
    now: datetime,
) -> Alert:
    return await act(conn, alert_id, "suppressed", by=by, note=note, now=now, until=until)


async def housekeep(conn: AsyncConnection[Any], now: datetime, ttl: timedelta) -> dict[str, int]:
    """End suppressions that ran out; expire open alerts with no news for ``ttl``."""
    done = {"unsuppressed": 0, "expired": 0}
    async with conn.transaction():
        async with conn.cursor(row_factory=class_row(Alert)) as cur:
            await cur.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE state IN ('active', 'acknowledged', "
                "'suppressed') AND (updated_at <= %s OR suppressed_until <= %s) "
                "ORDER BY id FOR UPDATE",
                (now - ttl, now),
            )
            stale = await cur.fetchall()
        for alert in stale:
            if alert.updated_at <= now - ttl:
                note = f"no resolve within {ttl}"
                await _move(conn, alert, "expired", SYSTEM, note, now)
                done["expired"] += 1
            else:
                await _move(conn, alert, "active", SYSTEM, "suppression ended", now)
                done["unsuppressed"] += 1
    return done


async def record_events(conn: AsyncConnection[Any], events: list[Any]) -> None:
    """Open and resolve alerts from newly archived alert events (caller's transaction).
    ``acknowledged`` events were published by ``act`` itself: nothing to apply."""
    events = [e for e in events if e.state != "acknowledged"]
    for event in sorted(events, key=lambda e: (e.started_at, e.state != "firing")):
        await _record(conn, event)


async def _record(conn: AsyncConnection[Any], e: AlertEvent) -> None:
    by = f"rule:{e.rule}"
    at = e.ended_at or e.started_at
    state = "active" if e.state == "firing" else "resolved"
    cur = await conn.execute(
        "INSERT INTO alerts (fingerprint, started_at, rule, tenant, service, severity, title, "
        "labels, state, updated_at, resolved_at, resolved_by, category) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (fingerprint, started_at) DO NOTHING RETURNING id",
        (
            e.fingerprint,
            e.started_at,
            e.rule,
            e.tenant,
            e.service,
            e.severity,
            e.title,
            Jsonb(e.labels),
            state,
            at,
            at if state == "resolved" else None,
            by if state == "resolved" else None,
            e.category,
        ),
    )
    if (row := await cur.fetchone()) is not None:
        await _transition(conn, row[0], None, state, by, e.message, at)
        return
    if e.state != "resolved":
        return  # the alert exists already
    found = await conn.execute(
        "SELECT id FROM alerts WHERE fingerprint = %s AND started_at = %s",
        (e.fingerprint, e.started_at),
    )
    alert = await get(conn, (await found.fetchone())[0], lock=True)  # type: ignore[index]
    if alert.state in OPEN:
        await _move(conn, alert, "resolved", by, e.message, at, audit=False)
