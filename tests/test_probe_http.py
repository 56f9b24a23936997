"""The HTTP monitor and its condition language, against real local HTTP(S) servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.probe import conditions
from services.probe.monitors import ProbeContext
from services.probe.monitors.http import HttpCheck
from services.probe.service import run_check
from shared.config import parse_config
from shared.errors import ConfigError
from shared.streams import StreamNames
from tests.support.asgi import Reply, Routes, serve


@pytest_asyncio.fixture
async def ctx(redis: Redis, names: StreamNames) -> AsyncIterator[ProbeContext]:
    context = ProbeContext(redis, names)
    yield context
    await context.aclose()


def http(url: str, **kw: object) -> HttpCheck:
    return HttpCheck(name="web", tenant="t", service="shop", url=url, **kw)  # type: ignore[arg-type]


SEEN = conditions.Observation(
    status=200,
    response_time_ms=120.0,
    body=b'{"data": {"id": 1, "name": "a", "ok": true, "items": [1, 2]}}',
    headers={"content-type": "application/json; charset=utf-8"},
    json={"data": {"id": 1, "name": "a", "ok": True, "items": [1, 2]}},
    cert_seconds_left=3 * 86400,
)


@pytest.mark.parametrize(
    "text, holds",
    [
        ("[STATUS] == 200", True),
        ("[STATUS] != 200", False),
        ("[STATUS] < 300", True),
        ("[RESPONSE_TIME] < 300", True),
        ("[RESPONSE_TIME] < 100", False),
        ("[BODY].data.id == 1", True),
        ("[BODY].data.id == 2", False),
        ("[BODY].data.name == a", True),
        ('[BODY].data.name == "a"', True),
        ("[BODY].data.ok == true", True),
        ("[BODY].data.items[1] == 2", True),
        ("[BODY].data.missing == 1", False),
        ("[BODY].data.items[9] == 1", False),
        ("len([BODY].data.items) == 2", True),
        ('[BODY] == pat(*"id": 1*)', True),
        ("[HEADERS].content-type == pat(application/json*)", True),
        ("[HEADERS].x-nope == 1", False),
        ("[CERTIFICATE_EXPIRATION] > 48h", True),
        ("[CERTIFICATE_EXPIRATION] > 7d", False),
        ("[BODY].data.name > 3", False),  # ordering a string never holds
    ],
)
def test_conditions(text: str, holds: bool) -> None:
    assert conditions.parse(text).evaluate(SEEN)[0] is holds


@pytest.mark.parametrize(
    "text", ["STATUS == 200", "[STATUS] 200", "[NOPE] == 1", "[STATUS].x == 1", "len([STATUS] == 1"]
)
def test_bad_conditions_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.parse(text)
    doc = (
        "tenants: [{id: t}]\nchecks:\n  - name: web\n    type: http\n    tenant: t\n"
        f"    service: s\n    url: http://x\n    conditions: [{json.dumps(text)}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, "vigil.yaml", {})
    assert caught.value.field == "checks[0].conditions"


@pytest.mark.parametrize(
    "field, value", [("url", "ftp://example.com"), ("url", "not a url"), ("regex", "(")]
)
def test_bad_http_fields_are_refused(field: str, value: str) -> None:
    doc = (
        "tenants: [{id: t}]\nchecks:\n  - name: web\n    type: http\n    tenant: t\n"
        f"    service: s\n    url: http://x\n    {field}: {json.dumps(value)}\n"
    )
    if field == "url":
        doc = doc.replace("    url: http://x\n", "")
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, "vigil.yaml", {})
    assert caught.value.field == f"checks[0].{field}"


async def test_method_headers_body_and_assertions(ctx: ProbeContext) -> None:
    body = json.dumps({"data": {"id": 1, "state": "up"}}).encode()
    app = Routes({"/api": Reply(200, body, {"content-type": "application/json", "x-v": "7"})})
    async with serve(app) as url:
        ok = await run_check(
            http(
                url + "/api",
                method="POST",
                headers={"x-tenant": "t"},
                body='{"q": 1}',
                keyword='"state": "up"',
                regex=r'"id":\s*1',
                json={"$.data.state": "up", "$.data.id": 1},
                conditions=["[STATUS] == 200", "[BODY].data.id == 1", "[HEADERS].x-v == 7"],
            ),
            ctx,
        )
        wrong_json = await run_check(http(url + "/api", json={"$.data.state": "down"}), ctx)
        no_keyword = await run_check(http(url + "/api", keyword="maintenance"), ctx)
        no_match = await run_check(http(url + "/api", regex=r"^\d+$"), ctx)
        cond = await run_check(http(url + "/api", conditions=["[BODY].data.id == 2"]), ctx)
    assert ok.status == "healthy", ok.details
    request = app.requests[0]
    assert (request.method, request.body, request.headers["x-tenant"]) == ("POST", b'{"q": 1}', "t")
    assert (
        wrong_json.status == "unhealthy"
        and "expected 'down', got 'up'" in wrong_json.details["error"]
    )
    assert no_keyword.status == "unhealthy" and "maintenance" in no_keyword.details["error"]
    assert no_match.status == "unhealthy" and "does not match" in no_match.details["error"]
    assert cond.status == "unhealthy" and "(was 1)" in cond.details["error"]


async def test_json_assertion_on_a_non_json_body(ctx: ProbeContext) -> None:
    async with serve(Routes({"/": Reply(200, b"<html>")})) as url:
        result = await run_check(http(url + "/", json={"$.a": 1}), ctx)
    assert result.status == "unhealthy" and result.details["error"] == "body is not JSON"


async def test_redirects_toggle(ctx: ProbeContext) -> None:
    app = Routes({"/old": Reply(302, b"", {"location": "/new"}), "/new": Reply(200, b"here")})
    async with serve(app) as url:
        followed = await run_check(http(url + "/old", keyword="here"), ctx)
        kept = await run_check(http(url + "/old", follow_redirects=False, expect_status=[302]), ctx)
        kept_wrong = await run_check(
            http(url + "/old", follow_redirects=False, keyword="here"), ctx
        )
    assert followed.status == "healthy" and followed.details["status_code"] == 200
    assert kept.status == "healthy" and kept.details["status_code"] == 302
    assert kept_wrong.status == "unhealthy"
    assert [r.path for r in app.requests] == ["/old", "/new", "/old", "/old"]


async def test_huge_body_is_refused_without_reading_it_all(ctx: ProbeContext) -> None:
    async with serve(Routes({"/": Reply(200, b"x" * (3 << 20))})) as url:
        result = await run_check(http(url + "/", keyword="y", max_body_bytes=1 << 20), ctx)
    assert result.status == "unhealthy" and "larger than" in result.details["error"]


async def test_reset_and_hang_are_unhealthy(ctx: ProbeContext) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.transport.abort()  # RST, no answer

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        await asyncio.sleep(5)
        writer.close()

    for handler, word in ((reset, "Error"), (hang, "timed out")):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            result = await run_check(http(f"http://127.0.0.1:{port}/", timeout=0.3), ctx)
        assert result.status == "unhealthy" and word in result.details["error"], result.details


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _cert_files(ca: trustme.CA, tmp_path: Path, days: float) -> dict[str, str]:
    cert = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=days))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}


async def test_tls_verify_toggle_and_certificate_expiry(
    ctx: ProbeContext, ca: trustme.CA, tmp_path: Path
) -> None:
    files = _cert_files(ca, tmp_path, days=3)
    async with serve(Routes({"/": Reply()}), **files) as url:
        verified = await run_check(http(url + "/"), ctx)
        unverified = await run_check(http(url + "/", verify_tls=False), ctx)
        soon = await run_check(
            http(url + "/", verify_tls=False, conditions=["[CERTIFICATE_EXPIRATION] > 7d"]), ctx
        )
        fine = await run_check(
            http(url + "/", verify_tls=False, conditions=["[CERTIFICATE_EXPIRATION] > 48h"]), ctx
        )
    assert (
        verified.status == "unhealthy" and "CERTIFICATE_VERIFY_FAILED" in verified.details["error"]
    )
    assert unverified.status == "healthy"
    assert soon.status == "unhealthy" and "CERTIFICATE_EXPIRATION" in soon.details["error"]
    assert fine.status == "healthy" and 2.9 < fine.details["cert_days_left"] < 3.1


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        condition = conditions.parse(text)
    except conditions.ConditionError:
        return
    condition.evaluate(SEEN)  # whatever parsed evaluates without raising


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=10,
    ),
    st.sampled_from(["[BODY].a", "[BODY].a[0]", "len([BODY].a.b)", "[BODY].a == pat(*)"]),
)
@settings(max_examples=300, deadline=None)
def test_conditions_never_raise_on_any_json(document: object, left: str) -> None:
    seen = conditions.Observation(200, 1.0, b"", {}, {"a": document})
    text = left if " == " in left else f"{left} > 1"
    conditions.parse(text).evaluate(seen)
