"""The wire contract: every message Vigil puts on or takes from a stream.

Each Struct is defined here once. Field names are the JSON names. New optional
fields may be added within a schema version; removing or retyping a field bumps
``SCHEMA_VERSION`` and the exported file name (see ``schemas/README.md``).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1

Status = Literal["healthy", "degraded", "unhealthy", "unknown"]
Severity = Literal["critical", "warning", "info"]
AlertState = Literal["firing", "resolved"]
# What an AlertEvent may say: AlertState, or (since the acknowledge release, schema
# version 1 still) that a person acknowledged the alert.
AlertEventState = Literal["firing", "resolved", "acknowledged"]
DeliveryOutcome = Literal["delivered", "retrying", "failed", "skipped"]
Priority = Literal["critical", "high", "medium", "low"]
Category = Literal[
    "availability", "performance", "database", "application", "security", "business", "system"
]

UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with offset")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def new_event_id() -> str:
    """A random event id (UUID4 hex) for messages that have no natural key."""
    return uuid.uuid4().hex


def stable_id(*parts: str) -> str:
    """A deterministic id from its parts: a replayed message keeps its id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Fields every message carries."""

    event_id: str = msgspec.field(default_factory=new_event_id)
    schema_version: int = SCHEMA_VERSION


class CheckResult(Message, frozen=True, kw_only=True):
    """One run of one check by a probe worker."""

    tenant: Name
    service: Name
    check: Name
    tier: Name
    status: Status
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    observed_at: UtcTime
    details: dict[str, Any] = {}


class MetricSample(Message, frozen=True, kw_only=True):
    """A metric observation published by Vigil or by any other system."""

    tenant: Name
    service: Name
    metric: Name
    value: float
    observed_at: UtcTime
    labels: dict[str, str] = {}


class AlertEvent(Message, frozen=True, kw_only=True):
    """A change of an alert's state: it started firing, it resolved, or someone
    acknowledged it (``acknowledged``: only notifiers act on it, see schemas/README.md)."""

    fingerprint: Name
    rule: Name
    tenant: Name
    service: Name
    severity: Severity
    state: AlertEventState
    title: str
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = {}
    started_at: UtcTime
    ended_at: UtcTime | None = None
    source: str = "vigil"
    # Optional since the rule-engine release (schema version 1 still):
    priority: Priority | None = None  # from how far the value is past the threshold
    category: Category | None = None
    notification_count: Annotated[int, msgspec.Meta(ge=1)] = 1  # re-notifications count up
    recommendations: list[str] = []
    runbook_url: str = ""
    links: dict[str, str] = {}  # link text -> URL, shown in notifications
    # Why notifiers must not send this event: "silence:<id>", "maintenance:<name>" or
    # "inhibited:<fingerprint>". The evaluator still emits it, so history stays complete.
    muted_by: str = ""
    # The event_id of the message that caused this transition (a CheckResult, MetricSample
    # or ApplicationError); empty when time alone caused it (a ``for`` timer, an absence).
    # Deliveries carry it on, so one id finds the whole story.
    correlation_id: str = ""
    # Set on ``acknowledged`` events only: who acknowledged the alert, and when.
    acknowledged_by: str = ""
    acknowledged_at: UtcTime | None = None


class ApplicationError(Message, frozen=True, kw_only=True):
    """An error another system reports (an exception, a failed job): becomes an alert of
    category ``application``, deduplicated by ``error_type`` + ``source``."""

    tenant: Name
    service: Name
    source: Name  # the reporting component: "checkout-api", "billing-worker"
    error_type: Name  # "DatabaseError", "TimeoutError", ...
    message: str
    stack_trace: str = ""
    endpoint: str = ""
    affected_users: Annotated[int, msgspec.Meta(ge=0)] = 0
    error_count: Annotated[int, msgspec.Meta(ge=1)] = 1
    observed_at: UtcTime


class DeliveryRecord(Message, frozen=True, kw_only=True):
    """One attempt to deliver one alert event to one channel."""

    alert_event_id: str
    fingerprint: str
    tenant: str
    channel: Name
    channel_type: Name
    target: str = ""  # where it went, without secrets: a host, an address, a chat id
    attempt: Annotated[int, msgspec.Meta(ge=1)]
    outcome: DeliveryOutcome
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str = ""
    at: UtcTime
    # The alert's correlation_id, else the alert's own event_id: never empty when set
    # by Vigil's notifier.
    correlation_id: str = ""


class ExternalAlert(Message, frozen=True, kw_only=True):
    """The generic JSON alert an outside producer POSTs to the notifier's intake
    (``POST /intake/{producer}/generic``, body ``{"alerts": [ExternalAlert, ...]}``).

    ``tenant`` defaults to the producer's tenant; ``fingerprint`` identifies the
    alert across firing and resolved (default: a hash of name, service and labels).
    """

    name: Name
    service: Name
    severity: Severity = "warning"
    state: AlertState = "firing"
    title: str = ""
    message: str = ""
    tenant: str = ""
    fingerprint: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = {}
    started_at: UtcTime | None = None
    ended_at: UtcTime | None = None
    runbook_url: str = ""
    links: dict[str, str] = {}


WIRE_TYPES: dict[str, type[Message]] = {
    "check_result": CheckResult,
    "metric_sample": MetricSample,
    "alert_event": AlertEvent,
    "application_error": ApplicationError,
    "delivery_record": DeliveryRecord,
    "external_alert": ExternalAlert,
}
