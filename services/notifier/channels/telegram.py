"""Telegram Bot API: sendMessage to one chat, HTML formatted."""

from __future__ import annotations

from html import escape
from typing import Any, ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, post_json
from services.notifier.templates import Notification


class TelegramConfig(ChannelConfig, frozen=True, kw_only=True, tag="telegram", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token",)

    bot_token: str
    chat_id: str
    base_url: str = "https://api.telegram.org"

    def target(self) -> str:
        return f"chat {self.chat_id}"


def telegram_payload(note: Notification, config: TelegramConfig) -> dict[str, Any]:
    text = f"<b>{escape(note.title)}</b>\n{escape(note.text)}"
    return {
        "chat_id": config.chat_id,
        "text": text[:4096],
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }


class TelegramChannel:
    type: ClassVar[str] = "telegram"
    description: ClassVar[str] = "Telegram bot message to one chat"

    async def send(self, note: Notification, config: TelegramConfig, ctx: SendContext) -> int:
        url = f"{config.base_url.rstrip('/')}/bot{config.bot_token}/sendMessage"
        return await post_json(ctx, url, telegram_payload(note, config), {}, config.timeout)
