"""TCP check: a connection can be opened within the timeout."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, ClassVar

import msgspec

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext


class TcpCheck(CheckConfig, frozen=True, kw_only=True, tag="tcp", tag_field="type"):
    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]


class TcpMonitor:
    type: ClassVar[str] = "tcp"
    description: ClassVar[str] = "TCP connect to host:port"

    async def run(self, check: TcpCheck, ctx: ProbeContext) -> Outcome:
        try:
            _, writer = await asyncio.open_connection(check.host, check.port)
        except OSError as exc:
            return Outcome("unhealthy", {"error": f"connect failed: {exc.strerror or exc}"})
        writer.close()
        # The peer closing first does not make the target unhealthy.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome("healthy", {})
