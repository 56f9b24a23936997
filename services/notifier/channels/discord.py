"""Discord webhook: one embed coloured by severity."""

from __future__ import annotations

from typing import Any, ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification


class DiscordConfig(ChannelConfig, frozen=True, kw_only=True, tag="discord", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str  # the webhook URL carries its token
    username: str = "Vigil"

    def target(self) -> str:
        return host_of(self.url)


def discord_payload(note: Notification, config: DiscordConfig) -> dict[str, Any]:
    alert = note.alert
    embed: dict[str, Any] = {
        "title": note.title[:256],
        "description": note.text[:4096],
        "color": int(note.color.lstrip("#"), 16),
        "timestamp": (alert.ended_at or alert.started_at).isoformat(),
    }
    if alert.runbook_url:
        embed["url"] = alert.runbook_url
    return {"username": config.username, "embeds": [embed]}


class DiscordChannel:
    type: ClassVar[str] = "discord"
    description: ClassVar[str] = "Discord webhook, one embed coloured by severity"

    async def send(self, note: Notification, config: DiscordConfig, ctx: SendContext) -> int:
        return await post_json(ctx, config.url, discord_payload(note, config), {}, config.timeout)
