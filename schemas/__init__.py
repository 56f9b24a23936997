"""Vigil's public wire contract (msgspec Structs); see ``schemas/README.md``."""

from schemas.messages import (
    SCHEMA_VERSION,
    WIRE_TYPES,
    AlertEvent,
    AlertState,
    Category,
    CheckResult,
    DeliveryOutcome,
    DeliveryRecord,
    Message,
    MetricSample,
    Priority,
    Severity,
    Status,
    UtcTime,
    new_event_id,
    stable_id,
)

__all__ = [
    "SCHEMA_VERSION",
    "WIRE_TYPES",
    "AlertEvent",
    "AlertState",
    "Category",
    "CheckResult",
    "DeliveryOutcome",
    "DeliveryRecord",
    "Message",
    "MetricSample",
    "Priority",
    "Severity",
    "Status",
    "UtcTime",
    "new_event_id",
    "stable_id",
]
