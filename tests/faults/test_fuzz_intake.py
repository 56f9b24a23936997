"""The real intake server under fuzzed bodies and headers: every answer is 202, 400, 401,
403 or 413 (never a 500), and the alert stream grows by exactly the accepted count."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import redis as sync_redis
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.notifier.intake.app import create_app
from services.notifier.intake.config import IntakeConfig, Producer
from services.notifier.intake.openapi import openapi
from shared.streams import StreamNames
from tests.support.threaded import serve_in_thread
from tests.test_notifier_intake import AM_BODY

MAX_BODY = 64 * 1024
CONFIG = IntakeConfig(
    max_body=MAX_BODY,
    producers=[
        Producer(name="am", tenant="acme", tenants=["globex"], token="am-token-123"),
        Producer(name="ci", tenant="globex", hmac_secret="ci-secret-123"),
    ],
)
BEARER = {"authorization": "Bearer am-token-123"}
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["firing", "resolved", "2026-11-24T12:00:00Z", "0001-01-01T00:00:00Z"])
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
AM_KEYS = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "values"]


@st.composite
def mutated_alertmanager(draw: st.DrawFn) -> bytes:
    """A valid Alertmanager body with a few fields replaced, removed or added."""
    body: dict[str, Any] = json.loads(json.dumps(AM_BODY))
    alert = body["alerts"][draw(st.integers(0, 1))]
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([*AM_KEYS, "alerts", "tenant", "new"]))
        target = body if key == "alerts" else alert
        if draw(st.booleans()):
            target[key] = draw(JSON)
        else:
            target.pop(key, None)
    if draw(st.booleans()):
        alert.setdefault("labels", {})
        if isinstance(alert["labels"], dict):
            alert["labels"]["tenant"] = draw(st.sampled_from(["acme", "globex", "initech", ""]))
    return json.dumps(body, allow_nan=True).encode()


BODIES = (
    mutated_alertmanager()
    | mutated_alertmanager()  # twice: half the bodies are nearly valid
    | st.binary(max_size=300)
    | JSON.map(lambda v: json.dumps(v, allow_nan=True).encode())
    | st.sampled_from([b"", b"{", b'{"alerts": [' * 3000, b"\xff\xfe{}", b'{"alerts": NaN}'])
)


@pytest.fixture
def intake(redis_server_url: str, names: StreamNames) -> Iterator[str]:
    with serve_in_thread(lambda r: create_app(CONFIG, r, names), redis_server_url) as url:
        yield url


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def stream(redis_server_url: str, names: StreamNames) -> Iterator[Any]:
    client = sync_redis.Redis.from_url(redis_server_url)
    yield lambda: client.xlen(names.alerts)
    client.close()


@FUZZ
@given(fmt=st.sampled_from(["alertmanager", "grafana", "generic"]), body=BODIES)
def test_fuzzed_bodies_are_never_a_500_nor_half_applied(
    http: httpx.Client, intake: str, stream: Any, fmt: str, body: bytes
) -> None:
    before = stream()
    r = http.post(f"{intake}/intake/am/{fmt}", content=body, headers=BEARER)
    assert r.status_code in (202, 400, 403), (r.status_code, r.text)
    event(f"HTTP {r.status_code}")
    accepted = r.json()["accepted"] if r.status_code == 202 else 0
    assert stream() - before == accepted
    if r.status_code != 202:
        assert r.json()["error"]


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
SIGNATURES = (
    HEADER_TEXT
    | st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.integers(min_value=-(10**40), max_value=10**40) | st.just(int(time.time())),
        st.text(alphabet="0123456789abcdef", max_size=64),
    )
    | st.integers(0, 4000).map(lambda n: "t=" + "9" * n + ",v1=00")
)


@FUZZ
@given(
    producer=st.sampled_from(["am", "ci", "nobody", "..", "am%00"]),
    authorization=HEADER_TEXT
    | st.sampled_from(["Bearer ", "Bearer am-token-12", "bearer am-token-123"]),
    signature=SIGNATURES,
)
def test_fuzzed_credentials_are_refused(
    http: httpx.Client, intake: str, stream: Any, producer: str, authorization: str, signature: str
) -> None:
    # HTTP drops a header value's outer whitespace: the client refuses to send any.
    headers = {"authorization": authorization.strip().encode("latin-1")}
    headers["x-vigil-signature"] = signature.strip().encode("latin-1")
    r = http.post(f"{intake}/intake/{producer}/generic", content=b"{}", headers=headers)
    assert r.status_code in (401, 404), (r.status_code, r.text)
    assert stream() == 0


def test_oversized_bodies_are_413_whether_announced_or_streamed(
    http: httpx.Client, intake: str, stream: Any
) -> None:
    big = json.dumps({"alerts": AM_BODY["alerts"] * (MAX_BODY // 500)}).encode()
    assert len(big) > MAX_BODY
    announced = http.post(f"{intake}/intake/am/alertmanager", content=big, headers=BEARER)

    def chunks() -> Iterator[bytes]:  # no content-length: read until over the limit
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    streamed = http.post(f"{intake}/intake/am/alertmanager", content=chunks(), headers=BEARER)
    at_limit = http.post(f"{intake}/intake/am/alertmanager", content=big[:MAX_BODY], headers=BEARER)
    assert (announced.status_code, streamed.status_code) == (413, 413)
    assert announced.json() == {"error": f"body over {MAX_BODY} bytes"}
    assert at_limit.status_code == 400  # read whole, then refused as the invalid JSON it is
    assert stream() == 0


def test_invalid_json_is_400_with_the_reason(http: httpx.Client, intake: str, stream: Any) -> None:
    r = http.post(f"{intake}/intake/am/generic", content=b'{"alerts": [', headers=BEARER)
    assert r.status_code == 400 and "truncated" in r.json()["error"].lower()
    assert stream() == 0


def test_the_served_openapi_document_is_the_generated_one(intake: str) -> None:
    r = httpx.get(f"{intake}/intake/openapi.json")
    assert r.status_code == 200 and r.json() == msgspec.json.decode(msgspec.json.encode(openapi()))


schema = schemathesis.openapi.from_dict(openapi())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_against_the_openapi_description(
    case: schemathesis.Case, intake: str, stream: Any
) -> None:
    before = stream()
    case.path_parameters = {"producer": "am"}  # a producer the server knows
    response = case.call(base_url=intake, headers=BEARER)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    accepted = response.json()["accepted"] if response.status_code == 202 else 0
    assert stream() - before == accepted
