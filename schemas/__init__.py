"""Vigil's public wire contract (msgspec Structs); see ``schemas/README.md``."""

from schemas.messages import (
    SCHEMA_VERSION,
    WIRE_TYPES,
    AlertEvent,
    AlertState,
    CheckResult,
    DeliveryOutcome,
    DeliveryRecord,
    ExternalAlert,
    Message,
    MetricSample,
    Severity,
    Status,
    new_event_id,
    stable_id,
)

__all__ = [
    "SCHEMA_VERSION",
    "WIRE_TYPES",
    "AlertEvent",
    "AlertState",
    "CheckResult",
    "DeliveryOutcome",
    "DeliveryRecord",
    "ExternalAlert",
    "Message",
    "MetricSample",
    "Severity",
    "Status",
    "new_event_id",
    "stable_id",
]
