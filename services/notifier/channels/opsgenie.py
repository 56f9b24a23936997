"""Opsgenie Alert API: create on firing, acknowledge and close by alias."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification

_PRIORITY = {"critical": "P1", "warning": "P3", "info": "P5"}


class OpsgenieConfig(ChannelConfig, frozen=True, kw_only=True, tag="opsgenie", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: str
    base_url: str = "https://api.opsgenie.com"
    responders: list[dict[str, str]] = []  # e.g. {type: team, name: ops}
    tags: list[str] = []

    def target(self) -> str:
        return host_of(self.base_url)


def alias(note: Notification) -> str:
    return f"vigil:{note.alert.tenant}:{note.alert.fingerprint}"[:512]


def opsgenie_request(note: Notification, config: OpsgenieConfig) -> tuple[str, dict[str, Any]]:
    """(path, body) of the call for this notification."""
    alert = note.alert
    if alert.state == "resolved":
        path = f"/v2/alerts/{quote(alias(note), safe='')}/close?identifierType=alias"
        return path, {"source": "vigil", "note": note.title}
    if alert.state == "acknowledged":
        path = f"/v2/alerts/{quote(alias(note), safe='')}/acknowledge?identifierType=alias"
        return path, {"source": "vigil", "user": alert.acknowledged_by, "note": alert.message}
    details = {**alert.labels, "tenant": alert.tenant, "service": alert.service}
    if alert.runbook_url:
        details["runbook_url"] = alert.runbook_url
    body: dict[str, Any] = {
        "message": note.title[:130],
        "alias": alias(note),
        "description": note.text[:15000],
        "priority": _PRIORITY[alert.severity],
        "source": "vigil",
        "entity": alert.service,
        "tags": [*config.tags, alert.severity],
        "details": details,
    }
    if config.responders:
        body["responders"] = config.responders
    return "/v2/alerts", body


class OpsgenieChannel:
    type: ClassVar[str] = "opsgenie"
    description: ClassVar[str] = "Opsgenie Alert API: create, acknowledge, close by alias"

    async def send(self, note: Notification, config: OpsgenieConfig, ctx: SendContext) -> int:
        path, body = opsgenie_request(note, config)
        headers = {"authorization": f"GenieKey {config.api_key}"}
        return await post_json(
            ctx, config.base_url.rstrip("/") + path, body, headers, config.timeout
        )
