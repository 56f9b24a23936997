"""History on SQLite (``VIGIL_DATABASE_URL=sqlite:///path``): writes, rollups,
DELETE-based retention and the uptime and latency queries.

Synchronous, one ``sqlite3`` connection; the service runs these in a thread. The
pure parts (which rows are fresh, row tuples, the uptime SQL, rollup maths) are
the PostgreSQL path's own; only the statements differ. SQLite has one writer at a
time, so a refresh cannot race a writer as it can on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from services.archiver import queries, rollups, sqlite_alerts, sqlite_schema
from services.archiver.retention import EXTRA_WHERE, Delete, Plan
from services.archiver.settings import DATED
from services.archiver.sqlite_schema import from_ts, transaction, ts
from services.archiver.store import Item, Outcome, Table, keep_fresh

SCHEME = "sqlite:///"


def is_sqlite(url: str) -> bool:
    return url.startswith(SCHEME)


def connect(url: str) -> sqlite3.Connection:
    """Open (and create or upgrade) the database ``sqlite:///path`` names.

    Columns declared ``timestamptz`` come back as aware datetimes.
    """
    if not is_sqlite(url):
        raise ValueError(f"not a SQLite URL (want {SCHEME}path): {url}")
    sqlite3.register_converter("timestamptz", from_ts)
    db = sqlite3.connect(
        url.removeprefix(SCHEME),
        detect_types=sqlite3.PARSE_DECLTYPES,
        check_same_thread=False,  # the service hands it to one worker thread at a time
        isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE … COMMIT
    )
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    sqlite_schema.upgrade(db)
    return db


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return ts(value)
    return msgspec.json.encode(value).decode() if isinstance(value, dict) else value


def _mark(db: sqlite3.Connection, results: list[Any]) -> None:
    hours = {rollups.hour_of(r.observed_at) for r in results}
    db.executemany(
        "INSERT INTO check_rollups_pending (hour) VALUES (?)", [(ts(h),) for h in sorted(hours)]
    )


_ON_NEW: dict[str, Callable[[sqlite3.Connection, list[Any]], None]] = {
    "check_results": _mark,
    "alert_events": sqlite_alerts.record_events,
}


def write(
    db: sqlite3.Connection, table: Table, items: Sequence[Item], *, today: date, retention_days: int
) -> Outcome:
    """Write one batch in one transaction; a row whose stream id is there is skipped."""
    fresh, _ = keep_fresh(table, items, today, retention_days)
    outcome = Outcome(expired=len(items) - len(fresh))
    statement = (
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(table.columns)}) "
        f"VALUES ({', '.join('?' * len(table.columns))})"
    )
    new = []
    with transaction(db):
        for entry_id, message in fresh:
            row = [_param(v) for v in table.row(entry_id, message)]
            if db.execute(statement, row).rowcount:
                new.append(message)
        if new and table.name in _ON_NEW:
            _ON_NEW[table.name](db, new)
    outcome.new, outcome.duplicate = len(new), len(fresh) - len(new)
    return outcome


_UPSERT_HOUR = f"""
INSERT INTO check_rollups ({rollups.COLUMNS}) VALUES ({", ".join("?" * 11)})
ON CONFLICT (tenant, service, check_name, hour) DO UPDATE SET
    executions = excluded.executions, successes = excluded.successes,
    failures = excluded.failures, latency_sum = excluded.latency_sum,
    latency_min = excluded.latency_min, latency_max = excluded.latency_max,
    latency_buckets = excluded.latency_buckets
"""
_UPSERT_DAY = """
INSERT INTO check_rollups_daily
    (tenant, service, check_name, day, executions, successes, failures)
SELECT tenant, service, check_name, ?, sum(executions), sum(successes), sum(failures)
FROM check_rollups WHERE hour >= ? AND hour < ? GROUP BY 1, 2, 3
ON CONFLICT (tenant, service, check_name, day) DO UPDATE SET
    executions = excluded.executions, successes = excluded.successes,
    failures = excluded.failures
"""


def refresh(db: sqlite3.Connection) -> int:
    """Recompute the rollups of every noted hour and their days; returns how many hours."""
    with transaction(db):
        # The write lock is ours: nothing is noted between reading and deleting.
        hours = sorted({row[0] for row in db.execute("SELECT hour FROM check_rollups_pending")})
        db.execute("DELETE FROM check_rollups_pending")
        for start in hours:
            rows = db.execute(
                "SELECT tenant, service, check_name, status, latency_ms FROM check_results "
                "WHERE observed_at >= ? AND observed_at < ?",
                (ts(start), ts(start + rollups.HOUR)),
            )
            for (tenant, service, check, _), r in rollups.aggregate(rows, start).items():
                db.execute(
                    _UPSERT_HOUR,
                    (
                        *(tenant, service, check, ts(start)),
                        *(r.executions, r.successes, r.failures),
                        *(r.latency_sum, r.latency_min, r.latency_max),
                        json.dumps(r.buckets),
                    ),
                )
        for day in sorted({h.replace(hour=0) for h in hours}):
            db.execute(_UPSERT_DAY, (ts(day), ts(day), ts(day + rollups.DAY)))
    return len(hours)


def plan(db: sqlite3.Connection, days: dict[str, int], now: datetime) -> Plan:
    """What retention would delete at ``now``: no partitions here, every table by rows."""
    result = Plan()
    for table, column in DATED.items():
        before = now.astimezone(UTC) - timedelta(days=days[table])
        (count,) = db.execute(
            f"SELECT count(*) FROM {table} WHERE {column} < ? {EXTRA_WHERE.get(table, '')}",
            (ts(before),),
        ).fetchone()
        if count:
            result.deletes.append(Delete(table, before, count))
    return result


def apply(db: sqlite3.Connection, todo: Plan, now: datetime) -> None:
    """Delete what ``todo`` says, one transaction per table, and note it in the audit log."""
    for d in todo.deletes:
        with transaction(db):
            db.execute(
                f"DELETE FROM {d.table} WHERE {DATED[d.table]} < ? " + EXTRA_WHERE.get(d.table, ""),
                (ts(d.before),),
            )
    if todo.deletes:
        with transaction(db):
            sqlite_alerts.log_audit(db, now, "system", "prune", "history", {"done": todo.lines()})


def uptime(
    db: sqlite3.Connection,
    level: queries.Level,
    window: timedelta,
    now: datetime,
    *,
    tenant: str | None = None,
    service: str | None = None,
) -> list[queries.Uptime]:
    refresh(db)
    query, params = queries.uptime_query(
        level, window, now, tenant=tenant, service=service, param=":{}"
    )
    rows = db.execute(query, {k: _param(v) for k, v in params.items()}).fetchall()
    return queries.uptime_rows(level, rows)


def latency(
    db: sqlite3.Connection,
    tenant: str,
    service: str,
    check: str,
    since: datetime,
    until: datetime,
    step: timedelta = timedelta(hours=1),
) -> list[queries.LatencyPoint]:
    refresh(db)
    rows = db.execute(
        "SELECT hour, executions, latency_sum, latency_min, latency_max, latency_buckets "
        "FROM check_rollups WHERE tenant = ? AND service = ? AND check_name = ? "
        "AND hour >= ? AND hour < ? ORDER BY hour",
        (tenant, service, check, ts(rollups.hour_of(since)), ts(until)),
    )
    return queries.latency_points(((*r[:5], json.loads(r[5])) for r in rows), since, step)
