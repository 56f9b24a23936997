"""The history schema on SQLite, the single-machine embedded default, and the
two things every SQLite module needs: timestamps as text, and transactions.

The same tables and columns as the PostgreSQL migrations, without partitions
(retention DELETEs rows instead of dropping days). Timestamps are UTC text in
one fixed-width format, so they compare in time order; JSON is text; a latency
histogram is a JSON array. ``VERSION`` goes up with every change, applied by
``upgrade`` in order, like the Alembic revisions on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00:00"  # fixed width: text order is time order


def ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_FORMAT)


def from_ts(raw: bytes) -> datetime:
    return datetime.strptime(raw.decode(), _FORMAT).replace(tzinfo=UTC)


class transaction:
    """BEGIN IMMEDIATE … COMMIT, ROLLBACK on error: takes the write lock up front."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


_HISTORY = """
CREATE TABLE check_results (
    stream_id text PRIMARY KEY, event_id text NOT NULL, tenant text NOT NULL,
    service text NOT NULL, check_name text NOT NULL, tier text NOT NULL,
    status text NOT NULL, latency_ms real NOT NULL, details text NOT NULL DEFAULT '{}',
    observed_at timestamptz NOT NULL, archived_at timestamptz NOT NULL DEFAULT (
        strftime('%Y-%m-%d %H:%M:%f000+00:00', 'now'))
);
CREATE INDEX check_results_series ON check_results (tenant, service, check_name, observed_at);
CREATE INDEX check_results_observed ON check_results (observed_at);
CREATE TABLE metric_samples (
    stream_id text PRIMARY KEY, event_id text NOT NULL, tenant text NOT NULL,
    service text NOT NULL, metric text NOT NULL, value real NOT NULL,
    labels text NOT NULL DEFAULT '{}', observed_at timestamptz NOT NULL
);
CREATE INDEX metric_samples_series ON metric_samples (tenant, service, metric, observed_at);
CREATE INDEX metric_samples_observed ON metric_samples (observed_at);
CREATE TABLE alert_events (
    stream_id text PRIMARY KEY, event_id text NOT NULL, fingerprint text NOT NULL,
    rule text NOT NULL, tenant text NOT NULL, service text NOT NULL, severity text NOT NULL,
    state text NOT NULL, title text NOT NULL, message text NOT NULL, value real,
    threshold real, labels text NOT NULL DEFAULT '{}', started_at timestamptz NOT NULL,
    ended_at timestamptz, source text NOT NULL, correlation_id text NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_started ON alert_events (started_at);
CREATE TABLE deliveries (
    stream_id text PRIMARY KEY, event_id text NOT NULL, alert_event_id text NOT NULL,
    fingerprint text NOT NULL, tenant text NOT NULL, channel text NOT NULL,
    channel_type text NOT NULL, attempt integer NOT NULL, outcome text NOT NULL,
    status_code integer, latency_ms real NOT NULL, error text NOT NULL,
    at timestamptz NOT NULL, correlation_id text NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_at ON deliveries (at);
CREATE TABLE check_rollups (
    tenant text NOT NULL, service text NOT NULL, check_name text NOT NULL,
    hour timestamptz NOT NULL, executions integer NOT NULL, successes integer NOT NULL,
    failures integer NOT NULL, latency_sum real NOT NULL, latency_min real NOT NULL,
    latency_max real NOT NULL, latency_buckets text NOT NULL,
    PRIMARY KEY (tenant, service, check_name, hour)
);
CREATE INDEX check_rollups_hour ON check_rollups (hour);
CREATE TABLE check_rollups_daily (
    tenant text NOT NULL, service text NOT NULL, check_name text NOT NULL,
    day timestamptz NOT NULL, executions integer NOT NULL, successes integer NOT NULL,
    failures integer NOT NULL, PRIMARY KEY (tenant, service, check_name, day)
);
CREATE INDEX check_rollups_daily_day ON check_rollups_daily (day);
CREATE TABLE check_rollups_pending (
    id integer PRIMARY KEY AUTOINCREMENT, hour timestamptz NOT NULL
);
CREATE TABLE alerts (
    id integer PRIMARY KEY AUTOINCREMENT, fingerprint text NOT NULL,
    started_at timestamptz NOT NULL, rule text NOT NULL, tenant text NOT NULL,
    service text NOT NULL, severity text NOT NULL, title text NOT NULL,
    labels text NOT NULL DEFAULT '{}', state text NOT NULL, updated_at timestamptz NOT NULL,
    acknowledged_at timestamptz, acknowledged_by text, resolved_at timestamptz,
    resolved_by text, suppressed_until timestamptz, UNIQUE (fingerprint, started_at)
);
CREATE INDEX alerts_started ON alerts (started_at);
CREATE INDEX alerts_state ON alerts (state);
CREATE TABLE alert_transitions (
    id integer PRIMARY KEY AUTOINCREMENT,
    alert_id integer NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    from_state text, to_state text NOT NULL, at timestamptz NOT NULL, by text NOT NULL,
    note text NOT NULL DEFAULT ''
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, at);
CREATE INDEX alert_transitions_at ON alert_transitions (at);
CREATE TABLE audit_log (
    id integer PRIMARY KEY AUTOINCREMENT, at timestamptz NOT NULL, actor text NOT NULL,
    action text NOT NULL, target text NOT NULL, details text NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
"""
# Alerts keep their event's category, so acknowledgements reach routes matching on it.
_ALERT_CATEGORY = "ALTER TABLE alerts ADD COLUMN category text;"
STEPS: tuple[str, ...] = (_HISTORY, _ALERT_CATEGORY)  # append a step per change, never edit one
VERSION = len(STEPS)


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the schema to ``VERSION`` (PRAGMA user_version counts the steps applied)."""
    (current,) = db.execute("PRAGMA user_version").fetchone()
    for number, step in enumerate(STEPS[current:], start=current + 1):
        db.executescript(f"BEGIN; {step} PRAGMA user_version = {number}; COMMIT;")
