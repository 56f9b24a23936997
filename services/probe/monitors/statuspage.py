"""A SaaS provider's status page (Atlassian Statuspage v2 ``/api/v2/status.json``)."""

from __future__ import annotations

from typing import ClassVar

import httpx
import msgspec

from schemas import Status
from services.probe.monitors.base import (
    CheckConfig,
    Outcome,
    ProbeContext,
    failed,
    read_bounded,
    require_url,
)

INDICATORS: dict[str, Status] = {
    "none": "healthy",
    "minor": "degraded",
    "major": "unhealthy",
    "critical": "unhealthy",
    "maintenance": "degraded",
}


class _Body(msgspec.Struct):
    class _Status(msgspec.Struct):
        indicator: str
        description: str = ""

    status: _Status


class StatuspageCheck(CheckConfig, frozen=True, kw_only=True, tag="statuspage", tag_field="type"):
    url: str  # the page's base URL or the full .../api/v2/status.json

    def __post_init__(self) -> None:
        require_url(self.url, ("http", "https"))


class StatuspageMonitor:
    type: ClassVar[str] = "statuspage"
    description: ClassVar[str] = "SaaS status page (Statuspage v2 status.json): indicator"

    async def run(self, check: StatuspageCheck, ctx: ProbeContext) -> Outcome:
        url = check.url
        if not url.endswith(".json"):
            url = url.rstrip("/") + "/api/v2/status.json"
        try:
            async with ctx.http.client().stream("GET", url, timeout=check.timeout) as resp:
                code, content = resp.status_code, await read_bounded(resp, 1 << 20)
        except httpx.HTTPError as exc:
            return failed("unknown", exc, "status page unreachable")
        if code != 200 or content is None:
            return Outcome("unknown", {"error": f"status page answered {code}"})
        try:
            body = msgspec.json.decode(content, type=_Body)
        except msgspec.DecodeError as exc:
            return failed("unknown", exc, "not a Statuspage v2 status.json")
        indicator = body.status.indicator
        details = {"indicator": indicator, "description": body.status.description[:200]}
        return Outcome(INDICATORS.get(indicator, "unknown"), details)
