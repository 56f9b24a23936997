"""Intake authentication: credentials, signature freshness, constant-time comparison and
tenant binding, against the real intake server."""

from __future__ import annotations

import ast
import inspect
import json
import socket
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from redis import Redis as SyncRedis

from schemas import AlertEvent
from services.notifier.channels.webhook import sign
from services.notifier.intake import auth
from services.notifier.intake.app import create_app
from services.notifier.intake.config import IntakeConfig, Producer
from shared.streams import StreamNames
from tests.support.threaded import serve_in_thread

CONFIG = IntakeConfig(
    max_skew=300,
    producers=[
        Producer(name="acme-am", tenant="acme", token="acme-token-1"),
        Producer(name="globex-ci", tenant="globex", hmac_secret="globex-secret-1"),
    ],
)


def generic(*tenants: str) -> bytes:
    alerts = [{"name": "disk", "service": "db", "tenant": t} for t in tenants]
    return json.dumps({"alerts": alerts}).encode()


def alertmanager(tenant_label: str | None) -> bytes:
    labels = {"alertname": "Down"} | ({"tenant": tenant_label} if tenant_label else {})
    return json.dumps({"alerts": [{"status": "firing", "labels": labels}]}).encode()


@pytest.fixture
def intake(redis_server_url: str, names: StreamNames) -> Iterator[httpx.Client]:
    app = lambda r: create_app(CONFIG, r, names)  # noqa: E731
    with serve_in_thread(app, redis_server_url) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def redis(redis_server_url: str) -> Iterator[SyncRedis]:
    """A synchronous client: these tests call the threaded server synchronously."""
    with SyncRedis.from_url(redis_server_url) as client:
        yield client


def stored(redis: SyncRedis, names: StreamNames) -> list[AlertEvent]:
    return [msgspec.json.decode(f[b"data"], type=AlertEvent) for _, f in redis.xrange(names.alerts)]


def test_requests_without_a_valid_credential_are_refused(
    intake: httpx.Client, redis: SyncRedis, names: StreamNames
) -> None:
    body = generic("acme")
    attempts = {
        "none": {},
        "wrong token": {"authorization": "Bearer acme-token-2"},
        "token prefix": {"authorization": "Bearer acme-token-"},
        "token, no scheme": {"authorization": "acme-token-1"},
        "another producer's token": {"authorization": "Bearer globex-secret-1"},
        "signature for a token producer": {"x-vigil-signature": sign("acme-token-1", 1, body)},
    }
    codes = {
        k: intake.post("/intake/acme-am/generic", content=body, headers=h).status_code
        for k, h in attempts.items()
    }
    assert codes == dict.fromkeys(attempts, 401)
    now = int(time.time())
    signed = {
        "no signature": {},
        "wrong secret": {"x-vigil-signature": sign("globex-secret-2", now, body)},
        "other body": {"x-vigil-signature": sign("globex-secret-1", now, body + b" ")},
        "no timestamp": {"x-vigil-signature": sign("globex-secret-1", now, body).split(",")[1]},
        "bearer instead": {"authorization": "Bearer globex-secret-1"},
    }
    codes = {
        k: intake.post(
            "/intake/globex-ci/generic", content=generic("globex"), headers=h
        ).status_code
        for k, h in signed.items()
    }
    assert codes == dict.fromkeys(signed, 401)
    assert redis.xlen(names.alerts) == 0


@pytest.mark.parametrize(
    "age, accepted",
    [(0, True), (299, True), (-299, True), (301, False), (-301, False), (86_400, False)],
)
def test_signed_requests_outside_the_time_window_are_refused(
    intake: httpx.Client, redis: SyncRedis, names: StreamNames, age: int, accepted: bool
) -> None:
    body = generic("globex")
    stamp = int(time.time()) - age
    r = intake.post(
        "/intake/globex-ci/generic",
        content=body,
        headers={"x-vigil-signature": sign("globex-secret-1", stamp, body)},
    )
    assert r.status_code == (202 if accepted else 401)
    assert redis.xlen(names.alerts) == (1 if accepted else 0)


def test_a_replay_inside_the_window_is_refused(
    intake: httpx.Client, redis: SyncRedis, names: StreamNames
) -> None:
    body = generic("globex")
    stamp = int(time.time())
    headers = {"x-vigil-signature": sign("globex-secret-1", stamp, body)}
    first = intake.post("/intake/globex-ci/generic", content=body, headers=headers)
    replay = intake.post("/intake/globex-ci/generic", content=body, headers=headers)
    resigned = {"x-vigil-signature": sign("globex-secret-1", stamp + 1, body)}
    retry = intake.post("/intake/globex-ci/generic", content=body, headers=resigned)
    assert (first.status_code, replay.status_code, retry.status_code) == (202, 409, 202)
    assert "replay" in replay.json()["error"]
    assert redis.xlen(names.alerts) == 2  # the first and the re-signed retry
    markers = redis.keys(names.key("intake:seen:globex-ci:*"))
    assert len(markers) == 2  # one per accepted signature, each forgotten after the window
    for marker in markers:
        assert 0 < redis.ttl(marker) <= 2 * CONFIG.max_skew + 1


@pytest.mark.parametrize(
    "path, body, headers",
    [
        ("/intake/acme-am/generic", generic("globex"), {"authorization": "Bearer acme-token-1"}),
        (
            "/intake/acme-am/generic",
            generic("acme", "globex"),
            {"authorization": "Bearer acme-token-1"},
        ),
        (
            "/intake/acme-am/alertmanager",
            alertmanager("globex"),
            {"authorization": "Bearer acme-token-1"},
        ),
        ("/intake/globex-ci/generic", generic("acme"), None),
    ],
)
def test_a_producer_cannot_inject_alerts_for_another_tenant(
    intake: httpx.Client,
    redis: SyncRedis,
    names: StreamNames,
    path: str,
    body: bytes,
    headers: dict[str, str] | None,
) -> None:
    headers = headers or {"x-vigil-signature": sign("globex-secret-1", int(time.time()), body)}
    r = intake.post(path, content=body, headers=headers)
    assert r.status_code == 403
    assert "is not one this producer may post for" in r.json()["error"]
    assert redis.xlen(names.alerts) == 0  # not even the alert for its own tenant


def test_alerts_without_a_tenant_take_the_producers(
    intake: httpx.Client, redis: SyncRedis, names: StreamNames
) -> None:
    r = intake.post(
        "/intake/acme-am/alertmanager",
        content=alertmanager(None),
        headers={"authorization": "Bearer acme-token-1"},
    )
    assert r.status_code == 202
    assert [e.tenant for e in stored(redis, names)] == ["acme"]


def test_credentials_are_compared_in_constant_time_only() -> None:
    """Every comparison in the auth module that involves a credential goes through
    hmac.compare_digest: no ``==``/``!=``/``in`` on them, and compare_digest is called."""
    tree = ast.parse(inspect.getsource(auth))
    secretish = {"token", "hmac_secret", "expected", "given", "authorization", "signature"}
    digest_calls = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "hmac.compare_digest":
            digest_calls += 1
        if isinstance(node, ast.Compare):
            names_used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            names_used |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            is_none_test = all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops)
            assert is_none_test or not names_used & secretish, ast.unparse(node)
    assert digest_calls == 2


def test_an_unavailable_alert_stream_is_503_not_500(names: StreamNames) -> None:
    with socket.socket() as s:  # a port nothing listens on: Redis is down
        s.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    app = lambda r: create_app(CONFIG, r, names)  # noqa: E731
    with serve_in_thread(app, down) as url, httpx.Client(base_url=url) as client:
        r = client.post(
            "/intake/acme-am/generic",
            content=generic("acme"),
            headers={"authorization": "Bearer acme-token-1"},
        )
    assert r.status_code == 503 and "retry" in r.json()["error"]
