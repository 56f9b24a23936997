"""WebSocket check: the upgrade handshake and a ping answered by a pong."""

from __future__ import annotations

from typing import ClassVar

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed


class WebsocketCheck(CheckConfig, frozen=True, kw_only=True, tag="websocket", tag_field="type"):
    url: str  # ws:// or wss://
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError("url: must be a ws:// or wss:// URL")


class WebsocketMonitor:
    type: ClassVar[str] = "websocket"
    description: ClassVar[str] = "WebSocket: upgrade handshake, then ping answered by pong"

    async def run(self, check: WebsocketCheck, ctx: ProbeContext) -> Outcome:
        try:
            async with connect(
                check.url,
                additional_headers=check.headers,
                open_timeout=float(check.timeout),
                max_size=1 << 20,
            ) as ws:
                pong = await ws.ping()
                latency = await pong
        except InvalidHandshake as exc:
            return failed("unhealthy", exc, "handshake refused")
        except (TimeoutError, OSError, WebSocketException) as exc:
            return failed("unhealthy", exc)
        return Outcome("healthy", {"ping_ms": round(latency * 1000, 3)})
