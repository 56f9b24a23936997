"""MCP server check: a JSON-RPC ``initialize`` handshake over streamable HTTP."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import msgspec

from services.probe.monitors.base import (
    CheckConfig,
    Outcome,
    ProbeContext,
    failed,
    read_bounded,
    require_url,
)

PROTOCOL_VERSION = "2025-06-18"


class McpCheck(CheckConfig, frozen=True, kw_only=True, tag="mcp", tag_field="type"):
    url: str  # the server's MCP endpoint, e.g. https://host/mcp
    headers: dict[str, str] = {}  # e.g. Authorization: Bearer ${MCP_TOKEN}

    def __post_init__(self) -> None:
        require_url(self.url, ("http", "https"))


class McpMonitor:
    type: ClassVar[str] = "mcp"
    description: ClassVar[str] = "MCP server: JSON-RPC initialize handshake over HTTP"

    async def run(self, check: McpCheck, ctx: ProbeContext) -> Outcome:
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "vigil-probe", "version": "1"},
            },
        }
        headers = {"accept": "application/json, text/event-stream"} | check.headers
        client = ctx.http.client()
        try:
            async with client.stream(
                "POST", check.url, json=request, headers=headers, timeout=check.timeout
            ) as response:
                code, kind = response.status_code, response.headers.get("content-type", "")
                body = await read_bounded(response, 1 << 20)
        except httpx.HTTPError as exc:
            return failed("unhealthy", exc)
        if code != 200 or body is None:
            return Outcome("unhealthy", {"status_code": code, "error": f"answered {code}"})
        return judge(_payload(body, kind))


def _payload(body: bytes, content_type: str) -> Any:
    """The JSON-RPC message: the body itself, or the first SSE ``data:`` event."""
    if content_type.startswith("text/event-stream"):
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("data:"):
                body = line[5:].strip().encode()
                break
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def judge(message: Any) -> Outcome:
    if not isinstance(message, dict):
        return Outcome("unhealthy", {"error": "not a JSON-RPC answer"})
    if isinstance(error := message.get("error"), dict):
        return Outcome("unhealthy", {"error": f"initialize failed: {error.get('message')!s:.200}"})
    result = message.get("result")
    if not isinstance(result, dict) or "protocolVersion" not in result:
        return Outcome("unhealthy", {"error": "initialize result has no protocolVersion"})
    server = result.get("serverInfo")
    server = server if isinstance(server, dict) else {}
    return Outcome(
        "healthy",
        {
            "protocol_version": str(result["protocolVersion"])[:50],
            "server": str(server.get("name", ""))[:100],
            "server_version": str(server.get("version", ""))[:50],
        },
    )
