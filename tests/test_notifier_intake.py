"""External intake: Alertmanager, Grafana and generic JSON alerts over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from schemas import AlertEvent
from services.notifier.channels.webhook import sign
from services.notifier.intake.app import create_app
from services.notifier.intake.config import IntakeConfig, Producer
from services.notifier.intake.server import serve
from shared.streams import StreamNames
from tests.support.wait import wait_until

NOW = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
CONFIG = IntakeConfig(
    producers=[
        Producer(name="am", tenant="acme", tenants=["globex"], token="am-token-123"),
        Producer(name="graf", tenant="acme", token="graf-token-123"),
        Producer(name="ci", tenant="globex", hmac_secret="ci-secret-123"),
    ]
)
AM_BODY = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "status": "firing",
    "receiver": "vigil",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency"},
    "commonAnnotations": {},
    "externalURL": "http://am:9093",
    "someFutureField": {"x": 1},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "service": "api", "severity": "page"},
            "annotations": {"summary": "p99 over 1s", "runbook_url": "https://rb/api"},
            "startsAt": "2026-11-24T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph",
            "fingerprint": "abc123",
            "anotherNewField": True,
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DiskFull", "job": "node", "tenant": "globex"},
            "annotations": {"description": "disk back under 80%"},
            "startsAt": "2026-11-24T11:00:00Z",
            "endsAt": "2026-11-24T12:10:00Z",
            "fingerprint": "def456",
        },
    ],
}


def client(redis: Redis, names: StreamNames) -> httpx.AsyncClient:
    app = create_app(CONFIG, redis, names, now=lambda: NOW)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")


async def alerts(redis: Redis, names: StreamNames) -> list[AlertEvent]:
    return [
        msgspec.json.decode(f[b"data"], type=AlertEvent)
        for _, f in await redis.xrange(names.alerts)
    ]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_alertmanager_webhook_becomes_alert_events(redis: Redis, names: StreamNames) -> None:
    async with client(redis, names) as c:
        r = await c.post("/intake/am/alertmanager", json=AM_BODY, headers=bearer("am-token-123"))
        again = await c.post(
            "/intake/am/alertmanager", json=AM_BODY, headers=bearer("am-token-123")
        )
    assert r.status_code == 202 and r.json()["accepted"] == 2
    assert again.json()["event_ids"] == r.json()["event_ids"]  # a retry keeps the ids
    firing, resolved, *_ = await alerts(redis, names)
    assert (firing.tenant, firing.service, firing.rule) == ("acme", "api", "HighLatency")
    assert (firing.severity, firing.state, firing.title) == ("critical", "firing", "p99 over 1s")
    assert firing.fingerprint == "alertmanager:am:abc123"
    assert firing.started_at == datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert firing.ended_at is None
    assert firing.runbook_url == "https://rb/api"
    assert firing.links == {"Source": "http://prom/graph"}
    assert firing.source == "alertmanager:am"
    assert (resolved.tenant, resolved.service, resolved.severity) == ("globex", "node", "warning")
    assert resolved.state == "resolved" and resolved.message == "disk back under 80%"
    assert resolved.ended_at == datetime(2026, 11, 24, 12, 10, tzinfo=UTC)


async def test_grafana_webhook(redis: Redis, names: StreamNames) -> None:
    body = {
        "receiver": "vigil",
        "status": "firing",
        "orgId": 1,
        "title": "[FIRING:1] CPU",
        "state": "alerting",
        "message": "...",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CPU", "grafana_folder": "infra", "service": "db"},
                "annotations": {"summary": "CPU high"},
                "startsAt": "2026-11-24T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "values": {"B": 97.5},
                "valueString": "[ var='B' value=97.5 ]",
                "dashboardURL": "http://grafana/d/1",
                "panelURL": "http://grafana/d/1?viewPanel=2",
                "fingerprint": "g1",
            }
        ],
    }
    async with client(redis, names) as c:
        r = await c.post("/intake/graf/grafana", json=body, headers=bearer("graf-token-123"))
    assert r.status_code == 202
    [event] = await alerts(redis, names)
    assert (event.service, event.value, event.title) == ("db", 97.5, "CPU high")
    assert event.links == {
        "Dashboard": "http://grafana/d/1",
        "Panel": "http://grafana/d/1?viewPanel=2",
    }
    assert event.source == "grafana:graf"


async def test_generic_json_with_hmac(redis: Redis, names: StreamNames) -> None:
    body = json.dumps(
        {
            "alerts": [
                {
                    "name": "backup",
                    "service": "nightly",
                    "severity": "critical",
                    "title": "backup failed",
                    "labels": {"host": "b1"},
                }
            ]
        }
    ).encode()
    now = int(time.time())
    async with client(redis, names) as c:
        ok = await c.post(
            "/intake/ci/generic",
            content=body,
            headers={"x-vigil-signature": sign("ci-secret-123", now, body)},
        )
        forged = await c.post(
            "/intake/ci/generic",
            content=body,
            headers={"x-vigil-signature": sign("wrong-secret", now, body)},
        )
        stale = await c.post(
            "/intake/ci/generic",
            content=body,
            headers={"x-vigil-signature": sign("ci-secret-123", now - 3600, body)},
        )
    assert (ok.status_code, forged.status_code, stale.status_code) == (202, 401, 401)
    [event] = await alerts(redis, names)
    assert (event.tenant, event.rule, event.service) == ("globex", "backup", "nightly")
    assert (event.severity, event.title, event.labels) == (
        "critical",
        "backup failed",
        {"host": "b1"},
    )
    assert event.started_at == NOW


@pytest.mark.parametrize(
    "path, body, reason",
    [
        ("/intake/am/alertmanager", b"{not json", "malformed"),
        ("/intake/am/alertmanager", b'{"status": "firing"}', "missing required field `alerts`"),
        ("/intake/am/alertmanager", b'{"alerts": []}', "no alerts"),
        ("/intake/am/generic", b'{"alerts": [{"name": "x"}]}', "`service`"),
    ],
)
async def test_bad_payloads_are_400_with_the_reason(
    redis: Redis, names: StreamNames, path: str, body: bytes, reason: str
) -> None:
    async with client(redis, names) as c:
        r = await c.post(path, content=body, headers=bearer("am-token-123"))
    assert r.status_code == 400
    assert reason in r.json()["error"]
    assert await redis.xlen(names.alerts) == 0


async def test_a_bad_alert_rejects_the_whole_payload(redis: Redis, names: StreamNames) -> None:
    body = json.loads(json.dumps(AM_BODY))
    body["alerts"][1]["status"] = "pending"
    async with client(redis, names) as c:
        r = await c.post("/intake/am/alertmanager", json=body, headers=bearer("am-token-123"))
    assert r.status_code == 400
    assert r.json()["error"] == "alerts[1].status: expected firing or resolved, got 'pending'"
    assert await redis.xlen(names.alerts) == 0  # the good first alert was not applied


async def test_authentication(redis: Redis, names: StreamNames) -> None:
    async with client(redis, names) as c:
        codes = [
            (await c.post("/intake/am/alertmanager", json=AM_BODY, headers=h)).status_code
            for h in (bearer("am-token-12"), bearer("graf-token-123"), {})
        ]
        unknown = await c.post("/intake/nobody/alertmanager", json=AM_BODY)
        fmt = await c.post("/intake/am/xml", json=AM_BODY, headers=bearer("am-token-123"))
    assert codes == [401, 401, 401]
    assert (unknown.status_code, fmt.status_code) == (401, 404)
    assert "am-token" not in unknown.text
    assert await redis.xlen(names.alerts) == 0


async def test_served_by_uvicorn(redis: Redis, names: StreamNames) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = msgspec.structs.replace(CONFIG, port=port)
    server = asyncio.ensure_future(serve(config, redis, names))
    try:
        async with httpx.AsyncClient() as http:

            async def post() -> bool:
                try:
                    r = await http.post(
                        f"http://127.0.0.1:{port}/intake/am/alertmanager",
                        json=AM_BODY,
                        headers=bearer("am-token-123"),
                    )
                except httpx.ConnectError:
                    return False
                return r.status_code == 202

            await wait_until(post, timeout=10, what="the intake server")
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
    assert await redis.xlen(names.alerts) == 2
