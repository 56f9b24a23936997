"""In-app channel: notifications the dashboard reads, kept in a Redis stream per tenant.

Stream ``{prefix}:inapp:{tenant}`` (newest last, trimmed to about ``max_items``);
each entry has ``data`` (the AlertEvent JSON), ``title`` and ``text`` (rendered).
The dashboard reads it with XREVRANGE.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from redis.exceptions import RedisError

from services.notifier.channels.base import ChannelConfig, SendContext
from services.notifier.templates import Notification
from shared.errors import ChannelError
from shared.streams import StreamNames


class InAppConfig(ChannelConfig, frozen=True, kw_only=True, tag="inapp", tag_field="type"):
    max_items: Annotated[int, msgspec.Meta(ge=1)] = 10_000


def inapp_key(names: StreamNames, tenant: str) -> str:
    return names.key(f"inapp:{tenant}")


class InAppChannel:
    type: ClassVar[str] = "inapp"
    description: ClassVar[str] = "in-app notifications for the dashboard, stored in Redis"

    async def send(self, note: Notification, config: InAppConfig, ctx: SendContext) -> None:
        if ctx.redis is None or ctx.names is None:
            raise ChannelError("in-app channel needs Redis", permanent=True)
        fields = {
            "data": msgspec.json.encode(note.alert),
            "title": note.title,
            "text": note.text,
        }
        try:
            await ctx.redis.xadd(
                inapp_key(ctx.names, note.alert.tenant),
                fields,  # type: ignore[arg-type]
                maxlen=config.max_items,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            raise ChannelError(f"redis: {type(exc).__name__}", permanent=False) from exc
