"""The heartbeat endpoint: external jobs report ``success``, ``start`` or ``fail``.

    POST|GET /ping/<tenant>/<check>          success
    POST|GET /ping/<tenant>/<check>/start    the job started
    POST|GET /ping/<tenant>/<check>/fail     the job failed

A plain ASGI app served by uvicorn in the probe process; pings are written to Redis
so any probe worker's heartbeat check sees them. A check with a ``token`` wants it
as ``Authorization: Bearer <token>`` or ``?token=<token>``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.probe.monitors.heartbeat import EVENTS, HeartbeatCheck, pings_key
from shared import asgi
from shared.streams import StreamNames

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PingApp:
    def __init__(self, checks: Iterable[HeartbeatCheck], redis: Redis, names: StreamNames) -> None:
        self.checks = {c.key: c for c in checks}
        self.redis, self.names = redis, names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        code, text = await self.handle(scope)
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": text.encode()})

    async def handle(self, scope: Scope) -> tuple[int, str]:
        if scope["method"] not in ("GET", "POST", "HEAD"):
            return 405, "method not allowed\n"
        parts = scope["path"].strip("/").split("/")
        if len(parts) not in (3, 4) or parts[0] != "ping":
            return 404, "not found\n"
        event = parts[3] if len(parts) == 4 else "success"
        check = self.checks.get(f"{parts[1]}/{parts[2]}")
        if check is None or event not in EVENTS:
            return 404, "no such heartbeat check\n"
        if check.token and not _authorised(scope, check.token):
            return 403, "bad or missing token\n"
        try:
            await self.redis.hset(pings_key(self.names, check.key), event, int(time.time() * 1000))
        except RedisError:
            return 503, "ping store unavailable, retry\n"
        return 200, "OK\n"


def _authorised(scope: Scope, token: str) -> bool:
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"authorization", b"").decode(errors="replace").removeprefix("Bearer ")
    query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
    given = given or (query.get("token") or [""])[0]
    return hmac.compare_digest(given.encode(), token.encode())


async def serve(app: PingApp, host: str, port: int) -> None:
    """Serve the ping endpoint until cancelled."""
    await asgi.serve(app, asgi.bind(host, port))
