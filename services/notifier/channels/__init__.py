"""The one registry of channel types: adding one touches its module and this file."""

from __future__ import annotations

from services.notifier.channels.base import Channel, ChannelConfig, RateLimit, SendContext
from services.notifier.channels.console import ConsoleChannel, ConsoleConfig
from services.notifier.channels.discord import DiscordChannel, DiscordConfig
from services.notifier.channels.inapp import InAppChannel, InAppConfig
from services.notifier.channels.mail import EmailChannel, EmailConfig
from services.notifier.channels.ntfy import NtfyChannel, NtfyConfig
from services.notifier.channels.opsgenie import OpsgenieChannel, OpsgenieConfig
from services.notifier.channels.pagerduty import PagerDutyChannel, PagerDutyConfig
from services.notifier.channels.slack import SlackChannel, SlackConfig
from services.notifier.channels.sms import SmsChannel, SmsConfig
from services.notifier.channels.teams import TeamsChannel, TeamsConfig
from services.notifier.channels.telegram import TelegramChannel, TelegramConfig
from services.notifier.channels.webhook import WebhookChannel, WebhookConfig

AnyChannelConfig = (
    WebhookConfig
    | ConsoleConfig
    | SlackConfig
    | EmailConfig
    | PagerDutyConfig
    | OpsgenieConfig
    | TeamsConfig
    | DiscordConfig
    | TelegramConfig
    | SmsConfig
    | NtfyConfig
    | InAppConfig
)

CHANNELS: dict[str, Channel] = {
    c.type: c
    for c in (
        WebhookChannel(),
        ConsoleChannel(),
        SlackChannel(),
        EmailChannel(),
        PagerDutyChannel(),
        OpsgenieChannel(),
        TeamsChannel(),
        DiscordChannel(),
        TelegramChannel(),
        SmsChannel(),
        NtfyChannel(),
        InAppChannel(),
    )
}

__all__ = [
    "CHANNELS",
    "AnyChannelConfig",
    "Channel",
    "ChannelConfig",
    "RateLimit",
    "SendContext",
]
