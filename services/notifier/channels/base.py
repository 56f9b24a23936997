"""What every channel shares: its config base, its Protocol and outcome classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol

import httpx
import msgspec

from schemas import AlertEvent
from shared.configbase import ConfigStruct, Seconds
from shared.errors import ChannelError


class ChannelConfig(ConfigStruct, frozen=True, kw_only=True):
    """Fields every channel has."""

    name: str
    timeout: Seconds = Seconds(5)
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    backoff: Seconds = Seconds(0.5)  # first retry delay; doubles per attempt, jittered

    @property
    def kind(self) -> str:
        """The channel type: the ``type`` tag this channel was written with."""
        return str(self.__struct_config__.tag)


@dataclass(slots=True)
class SendContext:
    """Long-lived clients that channels share inside one notifier process."""

    http: httpx.AsyncClient


class Channel(Protocol):
    """A channel type: how to deliver one alert event to one configured destination.

    ``send`` returns the HTTP status code (or None) on success and raises
    ``ChannelError`` otherwise, saying whether a retry can help.
    """

    type: ClassVar[str]
    description: ClassVar[str]

    async def send(self, alert: AlertEvent, config: Any, ctx: SendContext) -> int | None: ...


def classify(response: httpx.Response) -> int:
    """The one outcome table for HTTP channels: 2xx ok; 408, 429, 5xx retry; other 4xx stop."""
    code = response.status_code
    if 200 <= code < 300:
        return code
    retryable = code in (408, 425, 429) or code >= 500
    raise ChannelError(f"HTTP {code}", permanent=not retryable, status_code=code)


async def post_json(
    ctx: SendContext, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> int:
    """POST a JSON body; transport failures and timeouts are retryable."""
    try:
        response = await ctx.http.post(
            url,
            content=body,
            headers={"content-type": "application/json", **headers},
            timeout=timeout,
        )
    except httpx.TimeoutException as exc:
        raise ChannelError(f"timeout: {type(exc).__name__}", permanent=False) from exc
    except httpx.HTTPError as exc:
        raise ChannelError(f"transport: {type(exc).__name__}", permanent=False) from exc
    return classify(response)
