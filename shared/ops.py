"""Each process's operations endpoints: ``/livez``, ``/readyz`` and ``/metrics``.

Liveness answers as long as the event loop does. Readiness runs the process's
checks (Redis reachable, PostgreSQL reachable for the archiver, consumers
started) and answers 503 with the failing ones named.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared import asgi
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)
ReadinessCheck = Callable[[], Awaitable[None]]  # raises when not ready
CHECK_TIMEOUT_S = 2.0


def ops_app(checks: dict[str, ReadinessCheck]) -> Starlette:
    async def livez(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        failures: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"[:300]
        body = {
            "status": "ready" if not failures else "not ready",
            "failing": failures,
            "checks": sorted(checks),
        }
        return JSONResponse(body, status_code=503 if failures else 200)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/livez", livez), Route("/readyz", readyz), Route("/metrics", metrics)]
    )


class OpsServer:
    """The ops endpoints on a socket bound at once: a port in use is an error at start-up,
    and ``port`` is known immediately (``0`` takes any free port)."""

    def __init__(self, checks: dict[str, ReadinessCheck], host: str, port: int) -> None:
        self.app = ops_app(checks)
        self.socket = asgi.bind(host, port)

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    async def serve(self) -> None:
        await asgi.serve(self.app, self.socket)
