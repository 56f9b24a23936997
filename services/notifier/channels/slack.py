"""Slack incoming webhook: one attachment coloured by severity (green when resolved)."""

from __future__ import annotations

from typing import Any, ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification


class SlackConfig(ChannelConfig, frozen=True, kw_only=True, tag="slack", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str  # the incoming-webhook URL is itself the credential
    channel: str | None = None
    username: str = "Vigil"

    def target(self) -> str:
        return host_of(self.url)


def slack_payload(note: Notification, config: SlackConfig) -> dict[str, Any]:
    alert = note.alert
    body: dict[str, Any] = {
        "username": config.username,
        "text": note.title,
        "attachments": [
            {
                "color": note.color,
                "title": note.title,
                "text": note.text,
                "fallback": note.title,
                "footer": f"vigil · {alert.rule}",
                "ts": int((alert.ended_at or alert.started_at).timestamp()),
            }
        ],
    }
    if config.channel:
        body["channel"] = config.channel
    return body


class SlackChannel:
    type: ClassVar[str] = "slack"
    description: ClassVar[str] = "Slack incoming webhook, coloured by severity"

    async def send(self, note: Notification, config: SlackConfig, ctx: SendContext) -> int:
        return await post_json(ctx, config.url, slack_payload(note, config), {}, config.timeout)
