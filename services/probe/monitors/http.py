"""HTTP(S) check: the expected status code, and degraded when slow."""

from __future__ import annotations

import time
from typing import ClassVar

import httpx

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext


class HttpCheck(CheckConfig, frozen=True, kw_only=True, tag="http", tag_field="type"):
    url: str
    method: str = "GET"
    headers: dict[str, str] = {}
    expect_status: list[int] = []
    degraded_ms: float | None = None

    def __post_init__(self) -> None:
        url = httpx.URL(self.url)
        if url.scheme not in ("http", "https") or not url.host:
            # "field: reason" lets the config loader name the field.
            raise ValueError(f"url: must be an absolute http(s) URL, got {self.url!r}")


class HttpMonitor:
    type: ClassVar[str] = "http"
    description: ClassVar[str] = "HTTP(S) request; expected status codes, degraded when slow"

    async def run(self, check: HttpCheck, ctx: ProbeContext) -> Outcome:
        started = time.perf_counter()
        try:
            # Streamed and not read: a huge or endless body cannot stall the probe.
            async with ctx.http.stream(
                check.method, check.url, headers=check.headers, timeout=check.timeout
            ) as response:
                pass
        except httpx.HTTPError as exc:
            return Outcome("unhealthy", {"error": f"{type(exc).__name__}: {exc}"[:500]})
        elapsed_ms = (time.perf_counter() - started) * 1000
        code = response.status_code
        ok = code in check.expect_status if check.expect_status else 200 <= code < 400
        details: dict[str, object] = {"status_code": code}
        if not ok:
            details["error"] = f"unexpected status {code}"
            return Outcome("unhealthy", details)
        if check.degraded_ms is not None and elapsed_ms > check.degraded_ms:
            details["error"] = f"slow: {elapsed_ms:.0f} ms > {check.degraded_ms:.0f} ms"
            return Outcome("degraded", details)
        return Outcome("healthy", details)
