"""Outside payloads -> AlertEvents: Alertmanager v4, Grafana, and Vigil's generic JSON.

Parsing is lenient about fields it does not know (newer producer versions add
some) and strict about the ones it needs; any error rejects the whole payload.
Event ids are derived from the producer's own identity of each alert and its
transition, so a producer's retry of the same payload cannot double-notify.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import AlertEvent, ExternalAlert, Severity, stable_id
from services.notifier.intake.config import Producer

_SEVERITIES: dict[str, Severity] = {
    "critical": "critical",
    "page": "critical",
    "error": "critical",
    "high": "critical",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}


class BadPayload(ValueError):
    """The payload cannot be turned into alert events; the message says why."""


class AmAlert(msgspec.Struct, kw_only=True):
    status: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    fingerprint: str = ""
    generatorURL: str = ""
    # Grafana's additions
    values: dict[str, float] | None = None
    dashboardURL: str = ""
    panelURL: str = ""


class AmPayload(msgspec.Struct, kw_only=True):
    alerts: list[AmAlert]
    version: str = "4"
    status: str = ""


class GenericPayload(msgspec.Struct, kw_only=True):
    alerts: list[ExternalAlert]


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise BadPayload(str(exc)) from exc
    except RecursionError as exc:  # msgspec's own depth guard on deeply nested JSON
        raise BadPayload("JSON nested too deeply") from exc


def _severity(value: str | None, producer: Producer) -> Severity:
    return _SEVERITIES.get((value or "").lower(), producer.default_severity)


def _ended(value: datetime | None) -> datetime | None:
    # Alertmanager writes 0001-01-01T00:00:00Z for "not ended".
    return value if value is not None and value.year > 1 else None


def _am_event(a: AmAlert, i: int, producer: Producer, source: str, now: datetime) -> AlertEvent:
    if a.status not in ("firing", "resolved"):
        raise BadPayload(f"alerts[{i}].status: expected firing or resolved, got {a.status!r}")
    labels = dict(a.labels)
    name = labels.get("alertname") or "alert"
    fingerprint = a.fingerprint or stable_id(*sorted(f"{k}={v}" for k, v in labels.items()))
    started = a.startsAt if a.startsAt is not None and a.startsAt.year > 1 else now
    links = {"Source": a.generatorURL} if a.generatorURL else {}
    if a.dashboardURL:
        links["Dashboard"] = a.dashboardURL
    if a.panelURL:
        links["Panel"] = a.panelURL
    value = next(iter(a.values.values())) if a.values else None
    return AlertEvent(
        event_id=stable_id(source, producer.name, fingerprint, a.status, started.isoformat()),
        fingerprint=f"{source}:{producer.name}:{fingerprint}",
        rule=name,
        tenant=labels.get("tenant") or producer.tenant,
        service=labels.get("service") or labels.get("job") or name,
        severity=_severity(labels.get("severity"), producer),
        state=a.status,  # type: ignore[arg-type]
        title=a.annotations.get("summary") or name,
        message=a.annotations.get("description", ""),
        value=value,
        labels=labels,
        started_at=started,
        ended_at=_ended(a.endsAt) if a.status == "resolved" else None,
        source=f"{source}:{producer.name}",
        runbook_url=a.annotations.get("runbook_url", ""),
        links=links,
    )


def alertmanager(body: bytes, producer: Producer, now: datetime, source: str) -> list[AlertEvent]:
    """An Alertmanager v4 webhook body (``source='alertmanager'``) or Grafana's, which
    has the same shape plus a few fields (``source='grafana'``)."""
    payload: AmPayload = _decode(body, AmPayload)
    return [_am_event(a, i, producer, source, now) for i, a in enumerate(payload.alerts)]


def generic(body: bytes, producer: Producer, now: datetime) -> list[AlertEvent]:
    payload: GenericPayload = _decode(body, GenericPayload)
    events = []
    for a in payload.alerts:
        fingerprint = a.fingerprint or stable_id(
            a.name, a.service, *sorted(f"{k}={v}" for k, v in a.labels.items())
        )
        started = a.started_at or now
        events.append(
            AlertEvent(
                event_id=stable_id(
                    "generic", producer.name, fingerprint, a.state, started.isoformat()
                ),
                fingerprint=f"generic:{producer.name}:{fingerprint}",
                rule=a.name,
                tenant=a.tenant or producer.tenant,
                service=a.service,
                severity=a.severity,
                state=a.state,
                title=a.title or a.name,
                message=a.message,
                value=a.value,
                threshold=a.threshold,
                labels=a.labels,
                started_at=started,
                ended_at=(a.ended_at or now) if a.state == "resolved" else None,
                source=f"generic:{producer.name}",
                runbook_url=a.runbook_url,
                links=a.links,
            )
        )
    return events


PARSERS = {
    "alertmanager": lambda b, p, now: alertmanager(b, p, now, "alertmanager"),
    "grafana": lambda b, p, now: alertmanager(b, p, now, "grafana"),
    "generic": generic,
}


def utcnow() -> datetime:
    return datetime.now(UTC)
