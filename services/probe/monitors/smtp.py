"""SMTP check: the 220 banner and a 250 answer to EHLO."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, ClassVar

import msgspec

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed

MAX_LINE = 1024
MAX_LINES = 100


class SmtpCheck(CheckConfig, frozen=True, kw_only=True, tag="smtp", tag_field="type"):
    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 25
    helo_name: str = "vigil.local"


class SmtpMonitor:
    type: ClassVar[str] = "smtp"
    description: ClassVar[str] = "SMTP: 220 banner and EHLO answered with 250"

    async def run(self, check: SmtpCheck, ctx: ProbeContext) -> Outcome:
        try:
            reader, writer = await asyncio.open_connection(check.host, check.port, limit=MAX_LINE)
        except OSError as exc:
            return failed("unhealthy", exc, "connect failed")
        try:
            code, banner = await _reply(reader)
            if code != 220:
                return Outcome("unhealthy", {"error": f"banner {code}: {banner[:200]}"})
            writer.write(f"EHLO {check.helo_name}\r\n".encode())
            await writer.drain()
            code, text = await _reply(reader)
            if code != 250:
                return Outcome("unhealthy", {"error": f"EHLO answered {code}: {text[:200]}"})
            writer.write(b"QUIT\r\n")
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            return failed("unhealthy", exc, "bad SMTP dialogue")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        extensions = [line.split()[0] for line in text.splitlines()[1:] if line.strip()]
        return Outcome("healthy", {"banner": banner[:200], "extensions": extensions[:30]})


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One (possibly multi-line) SMTP reply: its code and text; ValueError if garbled."""
    lines = []
    for _ in range(MAX_LINES):
        raw = await reader.readuntil(b"\n")  # LimitOverrunError if too long
        line = raw.decode(errors="replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise ValueError(f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), "\n".join(lines)
    raise ValueError("SMTP reply too long")
