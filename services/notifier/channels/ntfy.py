"""ntfy: the text as the body of a POST to a topic, title and priority as headers."""

from __future__ import annotations

from typing import ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, request
from services.notifier.templates import Notification

_PRIORITY = {"critical": "5", "warning": "4", "info": "3"}


_TAGS = {"firing": "rotating_light", "acknowledged": "eyes", "resolved": "white_check_mark"}


class NtfyConfig(ChannelConfig, frozen=True, kw_only=True, tag="ntfy", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)

    topic: str
    base_url: str = "https://ntfy.sh"
    token: str | None = None

    def target(self) -> str:
        return host_of(self.base_url)  # on a public server the topic name is the secret


def ntfy_headers(note: Notification, config: NtfyConfig) -> dict[str, str]:
    alert = note.alert
    firing = alert.state == "firing"
    headers = {
        # HTTP headers are Latin-1: keep the title to what survives the trip.
        "title": note.title.encode("latin-1", "replace").decode("latin-1"),
        "priority": _PRIORITY[alert.severity] if firing else "3",
        "tags": _TAGS[alert.state],
        "content-type": "text/plain; charset=utf-8",
    }
    if alert.runbook_url:
        headers["click"] = alert.runbook_url
    if config.token:
        headers["authorization"] = f"Bearer {config.token}"
    return headers


class NtfyChannel:
    type: ClassVar[str] = "ntfy"
    description: ClassVar[str] = "ntfy push notification to a topic"

    async def send(self, note: Notification, config: NtfyConfig, ctx: SendContext) -> int:
        url = f"{config.base_url.rstrip('/')}/{config.topic}"
        return await request(
            ctx,
            "POST",
            url,
            config.timeout,
            content=(note.text or note.title).encode(),
            headers=ntfy_headers(note, config),
        )
