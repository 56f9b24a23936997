"""SMS through a Twilio-style REST API (form POST to .../Accounts/{sid}/Messages.json)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from schemas import AlertEvent
from services.notifier.channels.base import ChannelConfig, SendContext, request
from services.notifier.templates import Notification

SMS_MAX = 320  # two segments: enough for the title, cheap enough to page with


class SmsConfig(ChannelConfig, frozen=True, kw_only=True, tag="sms", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)

    account_sid: str
    auth_token: str
    from_: str = msgspec.field(name="from")
    to: str
    base_url: str = "https://api.twilio.com"

    def target(self) -> str:
        return self.to

    def sends(self, alert: AlertEvent) -> bool:
        return alert.state != "acknowledged"  # a text per acknowledgement is paging noise


def sms_form(note: Notification, config: SmsConfig) -> dict[str, str]:
    return {"To": config.to, "From": config.from_, "Body": note.title[:SMS_MAX]}


class SmsChannel:
    type: ClassVar[str] = "sms"
    description: ClassVar[str] = "SMS through a Twilio-style REST API"

    async def send(self, note: Notification, config: SmsConfig, ctx: SendContext) -> int:
        url = (
            f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        )
        return await request(
            ctx,
            "POST",
            url,
            config.timeout,
            form=sms_form(note, config),
            auth=(config.account_sid, config.auth_token),
        )
