"""HTTP(S) check: status, body keyword/regex, JSON paths, conditions, latency, certificate."""

from __future__ import annotations

import json
import re
import ssl
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

import aiohttp
import httpx
from cryptography import x509

from services.probe import conditions
from services.probe.monitors.base import (
    CheckConfig,
    Outcome,
    ProbeContext,
    failed,
)

MAX_BODY = 1 << 20
KEEPALIVE_READ = 64 << 10  # a longer unread body just costs the connection


class HttpCheck(CheckConfig, frozen=True, kw_only=True, tag="http", tag_field="type"):
    url: str
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    expect_status: list[int] = []
    degraded_ms: float | None = None
    keyword: str | None = None
    regex: str | None = None
    json: dict[str, Any] = {}
    conditions: list[str] = []
    follow_redirects: bool = True
    verify_tls: bool = True
    max_body_bytes: int = MAX_BODY

    def __post_init__(self) -> None:
        # "field: reason" lets the config loader name the field.
        try:
            url = httpx.URL(self.url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"url: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"url: must be an absolute http(s) URL, got {url.copy_with(password=None)}"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex: {exc}") from exc
        for text in self.conditions:
            try:
                _parse(text)
            except conditions.ConditionError as exc:
                raise ValueError(f"conditions: {exc}") from exc

    @property
    def reads_body(self) -> bool:
        return bool(self.keyword or self.regex or self.json) or any(
            "[BODY]" in c for c in self.conditions
        )


@lru_cache(maxsize=4096)
def _parse(text: str) -> conditions.Condition:
    return conditions.parse(text)


class HttpMonitor:
    type: ClassVar[str] = "http"
    description: ClassVar[str] = (
        "HTTP(S) request: status, keyword/regex, JSON paths, conditions, latency, certificate"
    )

    async def run(self, check: HttpCheck, ctx: ProbeContext) -> Outcome:
        session = ctx.http.session(verify=check.verify_tls)
        started = time.perf_counter()
        body, cert_left = b"", None
        try:
            async with session.request(
                check.method,
                check.url,
                headers=check.headers,
                data=check.body,
                allow_redirects=check.follow_redirects,
                timeout=aiohttp.ClientTimeout(total=float(check.timeout)),
            ) as response:
                if any("CERTIFICATE" in c for c in check.conditions):
                    cert_left = _cert_seconds_left(response)
                if check.reads_body:
                    read = await _read_bounded(response, check.max_body_bytes)
                    if read is None:
                        error = f"body larger than {check.max_body_bytes} bytes"
                        return Outcome("unhealthy", {"error": error})
                    body = read
                else:
                    # Read a small body anyway, so the connection can be reused.
                    await _read_bounded(response, KEEPALIVE_READ)
                status, headers = (
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                )
        except TimeoutError:
            return Outcome("unhealthy", {"error": f"timed out after {check.timeout:g}s"})
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a malformed answer
            return failed("unhealthy", exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return judge(check, status, headers, body, elapsed_ms, cert_left)


def judge(
    check: HttpCheck,
    code: int,
    headers: dict[str, str],
    body: bytes,
    elapsed_ms: float,
    cert_left: float | None,
) -> Outcome:
    """Everything after the request: pure, so each rule is one readable line."""
    details: dict[str, Any] = {"status_code": code}
    ok = code in check.expect_status if check.expect_status else 200 <= code < 400
    if not ok:
        return Outcome("unhealthy", details | {"error": f"unexpected status {code}"})
    text = body.decode(errors="replace")
    if check.keyword is not None and check.keyword not in text:
        return Outcome("unhealthy", details | {"error": f"keyword {check.keyword!r} not in body"})
    if check.regex is not None and re.search(check.regex, text) is None:
        return Outcome("unhealthy", details | {"error": f"body does not match {check.regex!r}"})
    document: Any = conditions.MISSING
    if check.json or any("[BODY]." in c or "len([BODY]" in c for c in check.conditions):
        try:
            document = json.loads(body)
        except ValueError:
            if check.json:
                return Outcome("unhealthy", details | {"error": "body is not JSON"})
    for path, expected in check.json.items():
        actual = conditions.resolve(document, path)
        if conditions.is_missing(actual) or actual != expected:
            shown = None if conditions.is_missing(actual) else actual
            error = f"{path}: expected {expected!r}, got {shown!r}"[:300]
            return Outcome("unhealthy", details | {"error": error})
    seen = conditions.Observation(
        code,
        elapsed_ms,
        body,
        headers,
        document,
        cert_left,
    )
    failures = []
    for text_ in check.conditions:
        holds, value = _parse(text_).evaluate(seen)
        if not holds:
            failures.append(f"{text_} (was {value!r})"[:200])
    if failures:
        return Outcome("unhealthy", details | {"error": "; ".join(failures)})
    if cert_left is not None:
        details["cert_days_left"] = round(cert_left / 86400, 2)
    if check.degraded_ms is not None and elapsed_ms > check.degraded_ms:
        details["error"] = f"slow: {elapsed_ms:.0f} ms > {check.degraded_ms:.0f} ms"
        return Outcome("degraded", details)
    return Outcome("healthy", details)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None past ``limit`` bytes: a huge body cannot exhaust memory."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _cert_seconds_left(response: aiohttp.ClientResponse) -> float | None:
    connection = response.connection
    transport = connection.transport if connection is not None else None
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    return (expires - datetime.now(UTC)).total_seconds()
