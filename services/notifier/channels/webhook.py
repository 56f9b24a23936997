"""Generic webhook: POSTs the alert event as JSON (the ``alert_event`` wire schema)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from schemas import AlertEvent
from services.notifier.channels.base import ChannelConfig, SendContext, post_json


class WebhookConfig(ChannelConfig, frozen=True, kw_only=True, tag="webhook", tag_field="type"):
    url: str
    headers: dict[str, str] = {}


class WebhookChannel:
    type: ClassVar[str] = "webhook"
    description: ClassVar[str] = "HTTP POST of the alert event as JSON to any URL"

    async def send(self, alert: AlertEvent, config: WebhookConfig, ctx: SendContext) -> int:
        headers = {"x-vigil-event-id": alert.event_id, **config.headers}
        return await post_json(ctx, config.url, msgspec.json.encode(alert), headers, config.timeout)
