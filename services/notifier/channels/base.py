"""What every channel shares: its config base, its Protocol and outcome classification."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Protocol
from urllib.parse import urlsplit

import msgspec
from pyreqwest.exceptions import RequestError
from redis.asyncio import Redis

from schemas import AlertEvent
from services.notifier.templates import Notification
from shared.configbase import ConfigStruct, Seconds
from shared.errors import ChannelError
from shared.netguard import GuardedClient
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

    def target(self) -> str:
        """Where this destination sends, safe to record (no secret); override per type."""
        return ""

    def sends(self, alert: AlertEvent) -> bool:
        """Whether this destination hears of ``alert`` at all; override per type (SMS and
        Alertmanager-shaped webhooks say nothing on acknowledgements)."""
        return True

    def secrets(self) -> list[str]:
        """The secret values of this destination (non-empty ones)."""
        return [v for f in self.secret_fields if (v := getattr(self, f, None))]


@dataclass(slots=True)
class SendContext:
    """Long-lived clients that channels share inside one notifier process.

    HTTP goes through one guarded pyreqwest-based client (``shared.netguard``): it costs
    about half the CPU per request of aiohttp, which was five times faster than httpx
    here (see docs/architecture.md and docs/performance.md).
    """

    http: GuardedClient
    redis: Redis | None = None
    names: StreamNames | None = None


class Channel(Protocol):
    """A channel type: how to deliver one notification to one configured destination.

    ``send`` returns the HTTP status code (or None) on success and raises
    ``ChannelError`` otherwise, saying whether a retry can help.
    """

    type: ClassVar[str]
    description: ClassVar[str]

    async def send(self, note: Notification, config: Any, ctx: SendContext) -> int | None: ...


@lru_cache(maxsize=1024)
def host_of(url: str) -> str:
    """The host (and port) of a URL, without credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a malformed port: the host alone says enough
        return host


def classify(code: int, retry_after: float | None = None) -> int:
    """The one outcome table for HTTP channels: 2xx ok; 408, 425, 429, 5xx retry; other 4xx stop."""
    if 200 <= code < 300:
        return code
    retryable = code in (408, 425, 429) or code >= 500
    raise ChannelError(
        f"HTTP {code}",
        permanent=not retryable,
        status_code=code,
        retry_after=retry_after if retryable else None,
    )


async def request(
    ctx: SendContext,
    method: str,
    url: str,
    timeout: float,
    *,
    content: bytes | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> int:
    """One HTTP request, classified; transport failures and timeouts are retryable.

    Errors name only the exception type, never the URL: some APIs carry their
    token in the path (Telegram, Slack and Discord webhooks).
    """
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers = {**(headers or {}), "authorization": f"Basic {token}"}
    try:
        answer = await ctx.http.request(
            method, url, timeout, content=content, form=form, headers=headers
        )
    except TimeoutError as exc:
        raise ChannelError("timeout: TimeoutError", permanent=False) from exc
    except (RequestError, OSError) as exc:  # OSError: the name did not resolve
        raise ChannelError(f"transport: {type(exc).__name__}", permanent=False) from exc
    return classify(*answer)


async def post_json(
    ctx: SendContext, url: str, body: Any, headers: dict[str, str], timeout: float
) -> int:
    """POST a JSON body (bytes as they are, anything else encoded with msgspec)."""
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    headers = {"content-type": "application/json", **headers}
    return await request(ctx, "POST", url, timeout, content=content, headers=headers)
