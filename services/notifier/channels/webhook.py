"""Generic webhook: POSTs the alert event as JSON, optionally signed and Alertmanager-shaped.

Signature (when ``secret`` is set): header ``x-vigil-signature: t=<unix seconds>,v1=<hex>``
where hex is HMAC-SHA256(secret, ``"<t>." + body``); receivers recompute it and
reject stale timestamps, which stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, ClassVar, Literal

import msgspec

from schemas import AlertEvent
from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification

SIGNATURE_HEADER = "x-vigil-signature"


class WebhookConfig(ChannelConfig, frozen=True, kw_only=True, tag="webhook", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    url: str
    headers: dict[str, str] = {}
    secret: str | None = None
    format: Literal["vigil", "alertmanager"] = "vigil"

    def target(self) -> str:
        return host_of(self.url)

    def sends(self, alert: AlertEvent) -> bool:
        # Alertmanager's body knows firing and resolved only.
        return self.format == "vigil" or alert.state != "acknowledged"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _rfc3339(alert: AlertEvent, ended: bool) -> str:
    when = alert.ended_at if ended else alert.started_at
    # Alertmanager's zero time means "not ended".
    return when.isoformat().replace("+00:00", "Z") if when else "0001-01-01T00:00:00Z"


def alertmanager_body(alert: AlertEvent, receiver: str) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for one alert event."""
    labels = {
        **alert.labels,
        "alertname": alert.rule,
        "tenant": alert.tenant,
        "service": alert.service,
        "severity": alert.severity,
    }
    annotations = {"summary": alert.title, "description": alert.message}
    if alert.runbook_url:
        annotations["runbook_url"] = alert.runbook_url
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={alert.rule!r}}}",
        "truncatedAlerts": 0,
        "status": alert.state,
        "receiver": receiver,
        "groupLabels": {"alertname": alert.rule},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": alert.state,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _rfc3339(alert, False),
                "endsAt": _rfc3339(alert, True),
                "generatorURL": "",
                "fingerprint": alert.fingerprint,
            }
        ],
    }


class WebhookChannel:
    type: ClassVar[str] = "webhook"
    description: ClassVar[str] = (
        "HTTP POST of the alert event as JSON (optionally HMAC-signed, Alertmanager v4 body)"
    )

    async def send(self, note: Notification, config: WebhookConfig, ctx: SendContext) -> int:
        alert = note.alert
        if config.format == "alertmanager":
            body = msgspec.json.encode(alertmanager_body(alert, config.name))
        else:
            body = msgspec.json.encode(alert)
        headers = {"x-vigil-event-id": alert.event_id, **config.headers}
        if config.secret:
            headers[SIGNATURE_HEADER] = sign(config.secret, int(time.time()), body)
        return await post_json(ctx, config.url, body, headers, config.timeout)
