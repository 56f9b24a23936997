"""What every channel shares: its config base, its Protocol and outcome classification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Protocol

import httpx
import msgspec
from redis.asyncio import Redis

from services.notifier.templates import Notification
from shared.configbase import ConfigStruct, Seconds
from shared.errors import ChannelError
from shared.streams import StreamNames


class RateLimit(ConfigStruct, frozen=True, kw_only=True):
    """At most ``count`` sends per ``per``; further sends wait their turn (never dropped)."""

    count: Annotated[int, msgspec.Meta(ge=1)]
    per: Seconds = Seconds(60)


class ChannelConfig(ConfigStruct, frozen=True, kw_only=True):
    """Fields every channel has."""

    # Names of the fields that hold secrets: kept out of logs, records and errors.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    name: str
    timeout: Seconds = Seconds(5)
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    backoff: Seconds = Seconds(0.5)  # first retry delay; doubles per attempt, jittered
    rate_limit: RateLimit | None = None

    @property
    def kind(self) -> str:
        """The channel type: the ``type`` tag this channel was written with."""
        return str(self.__struct_config__.tag)

    def secrets(self) -> list[str]:
        """The secret values of this destination (non-empty ones)."""
        return [v for f in self.secret_fields if (v := getattr(self, f, None))]


@dataclass(slots=True)
class SendContext:
    """Long-lived clients that channels share inside one notifier process.

    ``shards``: extra HTTP clients to spread requests over. One httpx client gets
    slower as its pool grows (it rescans connections per request), so many small
    clients deliver several times faster than one big one.
    """

    http: httpx.AsyncClient
    redis: Redis | None = None
    names: StreamNames | None = None
    shards: list[httpx.AsyncClient] = field(default_factory=list)
    _turn: int = 0

    def client(self) -> httpx.AsyncClient:
        if not self.shards:
            return self.http
        self._turn = (self._turn + 1) % len(self.shards)
        return self.shards[self._turn]


class Channel(Protocol):
    """A channel type: how to deliver one notification to one configured destination.

    ``send`` returns the HTTP status code (or None) on success and raises
    ``ChannelError`` otherwise, saying whether a retry can help.
    """

    type: ClassVar[str]
    description: ClassVar[str]

    async def send(self, note: Notification, config: Any, ctx: SendContext) -> int | None: ...


def classify(response: httpx.Response) -> int:
    """The one outcome table for HTTP channels: 2xx ok; 408, 425, 429, 5xx retry; other 4xx stop."""
    code = response.status_code
    if 200 <= code < 300:
        return code
    retryable = code in (408, 425, 429) or code >= 500
    raise ChannelError(f"HTTP {code}", permanent=not retryable, status_code=code)


async def request(ctx: SendContext, method: str, url: str, timeout: float, **kwargs: Any) -> int:
    """One HTTP request, classified; transport failures and timeouts are retryable.

    Errors name only the exception type, never the URL: some APIs carry their
    token in the path (Telegram, Slack and Discord webhooks).
    """
    try:
        response = await ctx.client().request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        raise ChannelError(f"timeout: {type(exc).__name__}", permanent=False) from exc
    except httpx.HTTPError as exc:
        raise ChannelError(f"transport: {type(exc).__name__}", permanent=False) from exc
    return classify(response)


async def post_json(
    ctx: SendContext, url: str, body: Any, headers: dict[str, str], timeout: float
) -> int:
    """POST a JSON body (bytes as they are, anything else encoded with msgspec)."""
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    headers = {"content-type": "application/json", **headers}
    return await request(ctx, "POST", url, timeout, content=content, headers=headers)
