"""Channels, routes, silences and maintenance windows through the API: secrets never
come back, test notifications go through the real path, running services adopt them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from schemas import AlertEvent, MetricSample
from services.evaluator.rules import ThresholdRule
from shared.config import Config, Tenant
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.console_support import bearer, console_client, make_token
from tests.support.http import HttpStub
from tests.test_evaluator_service import alerts

SECRET = "s3cr3t-signing-key"


def hook(url: str) -> dict[str, object]:
    return {"type": "webhook", "url": f"{url}/hook", "secret": SECRET, "backoff": "10ms"}


@asynccontextmanager
async def running(settings: Settings, config: Config, role: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, config, [role], stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def _poll(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_secrets_are_write_only_and_test_sends_for_real(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    admin = bearer(await make_token(database_url, "admin"))
    with HttpStub() as receiver:
        async with console_client(settings, database_url, redis) as (client, ctx):
            made = await client.post(
                "/api/v1/channels", headers=admin, json={"name": "ops", "body": hook(receiver.url)}
            )
            assert made.status_code == 201, made.text
            one = await client.get("/api/v1/channels/ops", headers=admin)
            listed = await client.get("/api/v1/channels", headers=admin)
            assert one.json()["body"]["secret"] == "***"
            # Sent back as read, the secret is kept; the new URL is taken.
            body = one.json()["body"] | {"url": f"{receiver.url}/hook2"}
            edited = await client.put("/api/v1/channels/ops", headers=admin, json={"body": body})
            assert edited.status_code == 200
            sent = await client.post("/api/v1/channels/ops/test", headers=admin)
            assert sent.status_code == 200, sent.text
            assert [r["outcome"] for r in sent.json()] == ["delivered"]
            assert [r.path for r in receiver.requests] == ["/hook2"]
            signature = receiver.requests[0].headers.get("x-vigil-signature", "")
            assert signature.startswith("t=")  # signed with the kept secret
            async with ctx.pool.connection() as conn:
                audit = await (await conn.execute("SELECT details FROM audit_log")).fetchall()
            stream = await redis.xrange(names.deliveries)
    assert len(stream) == 1
    for text in [one.text, listed.text, edited.text, sent.text, json.dumps(audit), str(stream)]:
        assert SECRET not in text


async def test_channel_auth_and_tenant_scope(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    operator = bearer(await make_token(database_url, "operator"))
    acme = bearer(await make_token(database_url, "admin", "acme"))
    globex = bearer(await make_token(database_url, "admin", "globex"))
    new = {"name": "acme-ops", "body": hook("http://127.0.0.1:9")}
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/channels")).status_code == 401
        assert (
            await client.post("/api/v1/channels", headers=operator, json=new)
        ).status_code == 403
        assert (await client.post("/api/v1/channels", headers=acme, json=new)).status_code == 201
        assert (await client.get("/api/v1/channels", headers=globex)).json() == []
        for method, url in [
            ("GET", "/api/v1/channels/acme-ops"),
            ("DELETE", "/api/v1/channels/acme-ops"),
            ("POST", "/api/v1/channels/acme-ops/test"),
        ]:
            assert (await client.request(method, url, headers=globex)).status_code == 404, url
        route = {"name": "r1", "body": {"match": {"tenant": "globex"}, "channels": ["x"]}}
        assert (await client.post("/api/v1/routes", headers=acme, json=route)).status_code == 400
        mine = {"name": "r1", "body": {"match": {"tenant": "acme"}, "channels": ["acme-ops"]}}
        assert (await client.post("/api/v1/routes", headers=acme, json=mine)).status_code == 201
        assert (await client.get("/api/v1/routes/r1", headers=globex)).status_code == 404
        # Routes name only channels that exist (for this tenant); a used channel stays.
        ghost = {"name": "r2", "body": {"match": {"tenant": "acme"}, "channels": ["nope"]}}
        refused = await client.post("/api/v1/routes", headers=acme, json=ghost)
        assert refused.status_code == 400 and "channels[0]" in refused.text
        used = await client.delete("/api/v1/channels/acme-ops", headers=acme)
        assert used.status_code == 409
        assert (await client.delete("/api/v1/routes/r1", headers=acme)).status_code == 204
        assert (await client.delete("/api/v1/channels/acme-ops", headers=acme)).status_code == 204


async def test_a_running_notifier_sends_through_an_api_channel_and_route(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    admin = bearer(await make_token(database_url, "admin"))
    config = Config(tenants=[Tenant(id="acme")])
    with HttpStub() as receiver:
        async with (
            console_client(settings, database_url, redis, config) as (client, _),
            running(settings, config, "notifier"),
        ):
            await client.post(
                "/api/v1/channels", headers=admin, json={"name": "ops", "body": hook(receiver.url)}
            )
            route = {"name": "all", "body": {"channels": ["ops"]}}
            assert (
                await client.post("/api/v1/routes", headers=admin, json=route)
            ).status_code == 201

            async def delivered() -> bool:
                # Each alert is new: the ones sent before the change was adopted matched no route.
                alert = AlertEvent(
                    fingerprint="fp",
                    rule="r",
                    tenant="acme",
                    service="shop",
                    severity="critical",
                    state="firing",
                    title="down",
                    started_at=datetime.now(UTC),
                )
                await redis.xadd(names.alerts, encode(alert))
                await asyncio.sleep(0.2)
                return bool(receiver.requests)

            await _poll(delivered, "a delivery through the API's channel")


async def test_a_running_evaluator_honours_an_api_silence(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    op = bearer(await make_token(database_url, "operator"))
    disk = ThresholdRule(name="disk", source="disk", threshold=80)
    config = Config(tenants=[Tenant(id="acme")], rules=[disk])
    now = datetime.now(UTC)
    silence = {
        "matchers": {"tenant": "acme", "rule": "disk"},
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "created_by": "alice",
        "comment": "disk swap",
    }
    async with (
        console_client(settings, database_url, redis, config) as (client, _),
        running(settings, config, "evaluator"),
    ):
        made = await client.post(
            "/api/v1/silences", headers=op, json={"name": "swap", "body": silence}
        )
        assert made.status_code == 201, made.text
        services = iter(range(1000))

        async def muted() -> bool:
            sample = MetricSample(
                tenant="acme",
                service=f"s{next(services)}",
                metric="disk",
                value=95,
                observed_at=datetime.now(UTC),
            )
            await redis.xadd(names.metrics, encode(sample))
            await asyncio.sleep(0.1)
            return any(a.muted_by == "silence:swap" for a in await alerts(redis, names))

        await _poll(muted, "an alert muted by the API's silence")


async def test_maintenance_windows_crud_and_roles(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    op = bearer(await make_token(database_url, "operator"))
    viewer = bearer(await make_token(database_url, "viewer"))
    acme = bearer(await make_token(database_url, "operator", "acme"))
    weekly = {"matchers": {"tenant": "acme"}, "days": ["sun"], "start": "02:00", "duration": "2h"}
    async with console_client(settings, database_url, redis) as (client, _):
        new = {"name": "sunday", "body": weekly}
        assert (
            await client.post("/api/v1/maintenance", headers=viewer, json=new)
        ).status_code == 403
        bad = {"name": "x", "body": weekly | {"starts_at": "2026-01-01T00:00:00Z"}}
        refused = await client.post("/api/v1/maintenance", headers=op, json=bad)
        assert refused.status_code == 400 and "days" in refused.text
        assert (await client.post("/api/v1/maintenance", headers=op, json=new)).status_code == 201
        got = (await client.get("/api/v1/maintenance/sunday", headers=acme)).json()
        assert got["body"]["duration"] == "2h" and got["tenant"] == "acme"
        longer = {"body": weekly | {"duration": "3h"}}
        assert (await client.put("/api/v1/maintenance/sunday", headers=acme, json=longer)).json()[
            "version"
        ] == 2
        assert (await client.delete("/api/v1/maintenance/sunday", headers=acme)).status_code == 204
        assert (await client.get("/api/v1/maintenance", headers=op)).json() == []


async def test_a_test_notification_to_a_metadata_address_is_refused(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    admin = bearer(await make_token(database_url, "admin"))
    # An IP literal: the guard refuses it before any connection, so nothing leaves.
    body = {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data"}
    async with console_client(settings, database_url, redis) as (client, _):
        made = await client.post(
            "/api/v1/channels", headers=admin, json={"name": "meta", "body": body}
        )
        assert made.status_code == 201, made.text
        sent = await client.post("/api/v1/channels/meta/test", headers=admin)
    assert sent.status_code == 200, sent.text
    [record] = sent.json()
    assert record["outcome"] == "failed"
    assert "169.254.169.254" in record["error"]
