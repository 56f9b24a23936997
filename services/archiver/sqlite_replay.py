"""What replay reads from a SQLite archive: results in stream order, and the alert
events that really fired (``replay.results_from_archive`` and ``alerts_from_archive``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from schemas import AlertEvent, CheckResult
from services.archiver.sqlite_schema import ts

# Stream ids compare as (milliseconds, sequence), not as text.
_STREAM_ORDER = (
    "CAST(substr(stream_id, 1, instr(stream_id, '-') - 1) AS INTEGER), "
    "CAST(substr(stream_id, instr(stream_id, '-') + 1) AS INTEGER)"
)
_RESULTS = f"""
SELECT tenant, service, check_name, tier, status, latency_ms, details, observed_at, event_id
FROM check_results WHERE observed_at >= ? AND observed_at < ?
  AND (? IS NULL OR tenant = ?) AND (? IS NULL OR service = ?)
ORDER BY {_STREAM_ORDER}
"""
_ALERT_FIELDS = (
    "event_id, fingerprint, rule, tenant, service, severity, state, title, message, value, "
    "threshold, labels, started_at, ended_at, source, correlation_id"
)


def open_results(
    db: sqlite3.Connection, since: Any, until: Any, tenant: str | None, service: str | None
) -> sqlite3.Cursor:
    """A cursor over the range's results; read it a page at a time with ``fetchmany``."""
    return db.execute(_RESULTS, (ts(since), ts(until), tenant, tenant, service, service))


def result(row: tuple[Any, ...]) -> CheckResult:
    """A check result from a SQLite row (details stored as JSON text)."""
    return history_result((*row[:6], msgspec.json.decode(row[6]), *row[7:]))


def history_result(row: Sequence[Any]) -> CheckResult:
    """A check result from a history row: the columns of ``_RESULTS``, details decoded
    (both backends select the same columns)."""
    return CheckResult(
        tenant=row[0],
        service=row[1],
        check=row[2],
        tier=row[3],
        status=row[4],
        latency_ms=row[5],
        details=row[6],
        observed_at=row[7],
        event_id=row[8],
    )


def alerts(db: sqlite3.Connection, since: Any, until: Any) -> list[AlertEvent]:
    """Alert events that ended or started in the range, in stream order."""
    cur = db.execute(
        f"SELECT {_ALERT_FIELDS} FROM alert_events "
        "WHERE coalesce(ended_at, started_at) >= ? AND coalesce(ended_at, started_at) < ? "
        f"ORDER BY {_STREAM_ORDER}",
        (ts(since), ts(until)),
    )
    names = [d[0] for d in cur.description]
    out = []
    for row in cur:
        fields = dict(zip(names, row, strict=True))
        fields["labels"] = msgspec.json.decode(fields["labels"])
        out.append(msgspec.convert(fields, AlertEvent))
    return out
