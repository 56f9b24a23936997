"""The one registry of channel types: adding one touches its module and this file."""

from __future__ import annotations

from services.notifier.channels.base import Channel, ChannelConfig, SendContext
from services.notifier.channels.console import ConsoleChannel, ConsoleConfig
from services.notifier.channels.webhook import WebhookChannel, WebhookConfig

AnyChannelConfig = WebhookConfig | ConsoleConfig

CHANNELS: dict[str, Channel] = {c.type: c for c in (WebhookChannel(), ConsoleChannel())}

__all__ = ["CHANNELS", "AnyChannelConfig", "Channel", "ChannelConfig", "SendContext"]
