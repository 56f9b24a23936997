"""The alert lifecycle, timeline and patterns on SQLite.

The rules are ``lifecycle.next_state`` and ``lifecycle.changes``, shared with
PostgreSQL; this module only stores their outcome. Callers hold a transaction
(``sqlite_schema.transaction``): SQLite's write lock stands in for ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from schemas import AlertEvent
from services.archiver import lifecycle
from services.archiver.lifecycle import OPEN, SYSTEM, Alert
from services.archiver.patterns import AlertFacts, Patterns, analyse
from services.archiver.queries import TimelineEntry
from services.archiver.sqlite_schema import transaction, ts
from shared.errors import AlertActionError

_COLUMNS = ", ".join(Alert.__slots__)


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ts(v) if isinstance(v, datetime) else v for k, v in values.items()}


def get(db: sqlite3.Connection, alert_id: int) -> Alert:
    row = db.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        raise AlertActionError(f"no alert with id {alert_id}")
    return Alert(*row)


def labels(db: sqlite3.Connection, alert_id: int) -> dict[str, str]:
    row = db.execute("SELECT labels FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return dict(json.loads(row[0])) if row else {}


def log_audit(
    db: sqlite3.Connection, at: datetime, actor: str, action: str, target: str, details: Any
) -> None:
    db.execute(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
        (ts(at), actor, action, target, json.dumps(details)),
    )


def _transition(
    db: sqlite3.Connection, alert_id: int, from_state: str | None, to: str, by: str, note: str,
    at: datetime,
) -> None:  # fmt: skip
    db.execute(
        "INSERT INTO alert_transitions (alert_id, from_state, to_state, at, by, note) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (alert_id, from_state, to, ts(at), by, note),
    )


def _move(
    db: sqlite3.Connection,
    alert: Alert,
    to: str,
    by: str,
    note: str,
    at: datetime,
    until: datetime | None = None,
    audit: bool = True,
) -> None:
    sets = lifecycle.changes(alert.state, to, by, at, until)
    assignments = ", ".join(f"{k} = :{k}" for k in sets)
    db.execute(f"UPDATE alerts SET {assignments} WHERE id = :id", _params(sets | {"id": alert.id}))
    _transition(db, alert.id, alert.state, to, by, note, at)
    if audit:
        details = {"from": alert.state, "note": note}
        if until is not None:
            details["until"] = until.isoformat()
        log_audit(db, at, by, to, f"alert:{alert.id}", details)


def act(
    db: sqlite3.Connection,
    alert_id: int,
    to: str,
    *,
    by: str,
    note: str = "",
    now: datetime,
    until: datetime | None = None,
) -> Alert:
    """``lifecycle.act`` on SQLite: checks, moves, records; returns the alert afterwards."""
    lifecycle.check_action(to, by, now, until)
    with transaction(db):
        _move(db, get(db, alert_id), to, by, note, now, until)
    return get(db, alert_id)


def housekeep(db: sqlite3.Connection, now: datetime, ttl: timedelta) -> dict[str, int]:
    """End suppressions that ran out; expire open alerts with no news for ``ttl``."""
    done = {"unsuppressed": 0, "expired": 0}
    with transaction(db):
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE state IN ('active', 'acknowledged', "
            "'suppressed') AND (updated_at <= ? OR suppressed_until <= ?) ORDER BY id",
            (ts(now - ttl), ts(now)),
        ).fetchall()
        for alert in (Alert(*r) for r in rows):
            if alert.updated_at <= now - ttl:
                _move(db, alert, "expired", SYSTEM, f"no resolve within {ttl}", now)
                done["expired"] += 1
            else:
                _move(db, alert, "active", SYSTEM, "suppression ended", now)
                done["unsuppressed"] += 1
    return done


def record_events(db: sqlite3.Connection, events: list[Any]) -> None:
    """Open and resolve alerts from newly archived events (the caller's transaction).
    ``acknowledged`` events were published by ``act`` itself: nothing to apply."""
    events = [e for e in events if e.state != "acknowledged"]
    for event in sorted(events, key=lambda e: (e.started_at, e.state != "firing")):
        _record(db, event)


def _record(db: sqlite3.Connection, e: AlertEvent) -> None:
    by = f"rule:{e.rule}"
    at = e.ended_at or e.started_at
    state = "active" if e.state == "firing" else "resolved"
    resolved = state == "resolved"
    row = db.execute(
        "INSERT INTO alerts (fingerprint, started_at, rule, tenant, service, severity, title, "
        "labels, state, updated_at, resolved_at, resolved_by, category) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (fingerprint, started_at) DO NOTHING RETURNING id",
        (
            *(e.fingerprint, ts(e.started_at), e.rule, e.tenant, e.service, e.severity),
            *(e.title, json.dumps(e.labels), state, ts(at)),
            *(ts(at) if resolved else None, by if resolved else None, e.category),
        ),
    ).fetchone()
    if row is not None:
        _transition(db, row[0], None, state, by, e.message, at)
        return
    if not resolved:
        return  # the alert exists already
    (alert_id,) = db.execute(
        "SELECT id FROM alerts WHERE fingerprint = ? AND started_at = ?",
        (e.fingerprint, ts(e.started_at)),
    ).fetchone()
    alert = get(db, alert_id)
    if alert.state in OPEN:
        _move(db, alert, "resolved", by, e.message, at, audit=False)


def timeline(
    db: sqlite3.Connection, since: datetime, until: datetime, *, tenant: str | None = None
) -> list[TimelineEntry]:
    """Every alert transition in ``[since, until)``, oldest first."""
    rows = db.execute(
        "SELECT t.at, a.id, a.fingerprint, a.rule, a.tenant, a.service, a.title, "
        "t.from_state, t.to_state, t.by, t.note FROM alert_transitions t "
        "JOIN alerts a ON a.id = t.alert_id WHERE t.at >= ? AND t.at < ? "
        "AND (? IS NULL OR a.tenant = ?) ORDER BY t.at, t.id",
        (ts(since), ts(until), tenant, tenant),
    )
    return [TimelineEntry(*r) for r in rows]


def patterns(
    db: sqlite3.Connection, since: datetime, until: datetime, *, tenant: str | None = None
) -> Patterns:
    """Pattern analysis of the alerts that started in ``[since, until)``."""
    rows = db.execute(
        "SELECT rule, fingerprint, started_at, acknowledged_at, resolved_at, state FROM alerts "
        "WHERE started_at >= ? AND started_at < ? AND (? IS NULL OR tenant = ?)",
        (ts(since), ts(until), tenant, tenant),
    )
    return analyse([AlertFacts(*r) for r in rows])
