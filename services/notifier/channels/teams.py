"""Microsoft Teams through a Workflows webhook: one Adaptive Card."""

from __future__ import annotations

from typing import Any, ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification

# Adaptive Card text colours: the nearest named colour to each severity.
_CARD_COLOR = {"critical": "Attention", "warning": "Warning", "info": "Accent"}
_STATE_COLOR = {"resolved": "Good", "acknowledged": "Default"}


class TeamsConfig(ChannelConfig, frozen=True, kw_only=True, tag="teams", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str  # the Workflows trigger URL carries its signature

    def target(self) -> str:
        return host_of(self.url)


def teams_payload(note: Notification) -> dict[str, Any]:
    alert = note.alert
    color = _STATE_COLOR.get(alert.state) or _CARD_COLOR[alert.severity]
    facts = [
        {"title": "Tenant", "value": alert.tenant},
        {"title": "Service", "value": alert.service},
        {"title": "Severity", "value": alert.severity},
        {"title": "State", "value": alert.state},
    ]
    links = dict(alert.links)
    if alert.runbook_url:
        links = {"Runbook": alert.runbook_url, **links}
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": note.title,
                "weight": "Bolder",
                "size": "Medium",
                "color": color,
                "wrap": True,
            },
            {"type": "TextBlock", "text": note.text, "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": t, "url": u} for t, u in links.items()],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class TeamsChannel:
    type: ClassVar[str] = "teams"
    description: ClassVar[str] = "Microsoft Teams Workflows webhook, one Adaptive Card"

    async def send(self, note: Notification, config: TeamsConfig, ctx: SendContext) -> int:
        return await post_json(ctx, config.url, teams_payload(note), {}, config.timeout)
