"""Vigil's own Prometheus metrics, served on ``/metrics`` by ``shared/ops.py``."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_STREAM = ["stream", "group"]

CONSUMED = Counter(
    "vigil_events_consumed_total",
    "Stream entries handled, by stream and group",
    _STREAM,
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "vigil_batch_size",
    "Entries per consumed batch",
    _STREAM,
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "vigil_batch_seconds", "Time to handle and acknowledge one batch", _STREAM, registry=REGISTRY
)
HANDLER_ERRORS = Counter(
    "vigil_batch_errors_total",
    "Batches whose handling failed (left pending for a retry)",
    [*_STREAM, "error"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "vigil_dead_letters_total",
    "Entries moved to the dead-letter stream",
    [*_STREAM, "kind"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "vigil_consumer_lag", "Entries not yet delivered to the group", _STREAM, registry=REGISTRY
)
CONSUMER_PENDING = Gauge(
    "vigil_consumer_pending", "Entries delivered but not acknowledged", _STREAM, registry=REGISTRY
)
STREAM_LENGTH = Gauge("vigil_stream_length", "Entries in a stream", ["stream"], registry=REGISTRY)

# Per service, incremented where the work happens.
PROBE_RESULTS = Counter(
    "vigil_probe_results_total",
    "Check results published by the probe, by tier and status",
    ["tier", "status"],
    registry=REGISTRY,
)
ALERT_EVENTS = Counter(
    "vigil_alert_events_total",
    "Alert events the evaluator emitted (committed with its checkpoint), by state",
    ["state"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "vigil_deliveries_total",
    "Delivery attempts by the notifier, by channel and outcome",
    ["channel", "channel_type", "outcome"],
    registry=REGISTRY,
)
ARCHIVED_ROWS = Counter(
    "vigil_archived_rows_total",
    "Rows the archiver handled, by table and outcome (new, duplicate, expired)",
    ["table", "outcome"],
    registry=REGISTRY,
)
ARCHIVE_COMMIT_SECONDS = Histogram(
    "vigil_archiver_commit_seconds",
    "Time to write and commit one batch, by table",
    ["table"],
    registry=REGISTRY,
)
