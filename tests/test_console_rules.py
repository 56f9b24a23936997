"""Rules through the API: stored, validated, audited, previewed, and adopted by a
running evaluator without a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from schemas import CheckResult, MetricSample
from services.archiver.service import Archiver
from services.console.objects import republish
from services.evaluator.rules import Selector, ThresholdRule
from shared import liveconfig
from shared.config import Config, Tenant
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.console_support import bearer, console_client, make_token
from tests.test_evaluator_service import alerts

DISK = {"type": "threshold", "source": "disk", "threshold": 80}
FILE_RULE = ThresholdRule(name="cpu", source="cpu", threshold=90, match=Selector(tenant="acme"))


def sample(metric: str, value: float, service: str = "shop") -> MetricSample:
    return MetricSample(
        tenant="acme", service=service, metric=metric, value=value, observed_at=datetime.now(UTC)
    )


@asynccontextmanager
async def evaluator(settings: Settings, config: Config) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, config, ["evaluator"], stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def fired(redis: Redis, names: StreamNames, rule: str, service: str, metric: str) -> bool:
    """Offer one more sample (the change may not be adopted yet); has ``rule`` fired?"""
    await redis.xadd(names.metrics, encode(sample(metric, 95, service)))
    await asyncio.sleep(0.1)
    return any(a.rule == rule and a.service == service for a in await alerts(redis, names))


@pytest.mark.parametrize("shards", [1, 2], ids=["plain", "sharded"])
async def test_a_running_evaluator_fires_on_an_api_rule_and_stops_when_disabled(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames, shards: int
) -> None:
    settings = dataclasses.replace(settings, evaluator_shards=shards)
    config = Config(tenants=[Tenant(id="acme")])
    op = bearer(await make_token(database_url, "operator"))
    async with (
        console_client(settings, database_url, redis, config) as (client, _),
        evaluator(settings, config),
    ):
        made = await client.post("/api/v1/rules", headers=op, json={"name": "disk", "body": DISK})
        assert made.status_code == 201, made.text
        await _poll(lambda: fired(redis, names, "disk", "shop", "disk"), "the API rule to fire")
        off = await client.post("/api/v1/rules/disk/disable", headers=op)
        assert off.json()["enabled"] is False
        # The open alert of the disabled rule resolves.
        await _poll(
            lambda: _any(redis, names, lambda a: (a.rule, a.state) == ("disk", "resolved")),
            "the disabled rule's alert to resolve",
        )
        # A rule created after the disable fires once the evaluator has both changes...
        canary = {"type": "threshold", "source": "temp", "threshold": 80}
        await client.post("/api/v1/rules", headers=op, json={"name": "temp", "body": canary})
        await _poll(lambda: fired(redis, names, "temp", "db", "temp"), "the canary to fire")
        # ...and by then the disabled rule no longer fires on a new series.
        await redis.xadd(names.metrics, encode(sample("disk", 99, "db")))
        await redis.xadd(names.metrics, encode(sample("temp", 95, "cache")))
        await _poll(
            lambda: _any(redis, names, lambda a: a.rule == "temp" and a.service == "cache"),
            "the canary on the last batch",
        )
        assert not [a for a in await alerts(redis, names) if (a.rule, a.service) == ("disk", "db")]


async def _any(redis: Redis, names: StreamNames, pred: object) -> bool:
    return any(pred(a) for a in await alerts(redis, names))  # type: ignore[operator]


async def _poll(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_crud_validation_versions_and_audit(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    op = bearer(await make_token(database_url, "operator", name="bob"))
    config = Config(tenants=[Tenant(id="acme")], rules=[FILE_RULE])
    async with console_client(settings, database_url, redis, config) as (client, ctx):
        listed = (await client.get("/api/v1/rules", headers=op)).json()
        assert [(r["name"], r["source"]) for r in listed] == [("cpu", "config")]
        bad = await client.post(
            "/api/v1/rules", headers=op, json={"name": "x", "body": DISK | {"threshold": "hot"}}
        )
        assert bad.status_code == 400 and "threshold" in bad.json()["detail"]
        checked = await client.post(
            "/api/v1/rules/validate", headers=op, json={"name": "x", "body": {"type": "nope"}}
        )
        assert checked.json()["valid"] is False and "type" in checked.json()["error"]
        good = {"name": "x", "body": DISK | {"for": "5m"}}
        ok = await client.post("/api/v1/rules/validate", headers=op, json=good)
        assert ok.json() == {"valid": True, "error": None}
        assert (await client.post("/api/v1/rules", headers=op, json=good)).status_code == 201
        assert (await client.post("/api/v1/rules", headers=op, json=good)).status_code == 409
        edit = {"body": DISK | {"threshold": 85}, "version": 1}
        changed = await client.put("/api/v1/rules/x", headers=op, json=edit)
        assert changed.json()["version"] == 2 and changed.json()["body"]["threshold"] == 85
        stale = await client.put("/api/v1/rules/x", headers=op, json=edit)
        assert stale.status_code == 409
        # Toggling the file's rule stores an override of the same name.
        off = await client.post("/api/v1/rules/cpu/disable", headers=op)
        assert (off.json()["source"], off.json()["enabled"]) == ("api", False)
        assert (await client.get("/api/v1/rules/cpu", headers=op)).json()["enabled"] is False
        assert (await client.delete("/api/v1/rules/x", headers=op)).status_code == 204
        assert (await client.get("/api/v1/rules/x", headers=op)).status_code == 404
        assert (await client.delete("/api/v1/rules/x", headers=op)).status_code == 404
        async with ctx.pool.connection() as conn:
            audit = await (
                await conn.execute("SELECT actor, action, target FROM audit_log ORDER BY id")
            ).fetchall()
        live = await ctx.redis.hget(ctx.names.key("console:live"), "set")
    assert audit == [
        ("token:bob", "rule.create", "rule:x"),
        ("token:bob", "rule.update", "rule:x"),
        ("token:bob", "rule.disable", "rule:cpu"),
        ("token:bob", "rule.delete", "rule:x"),
    ]
    assert live is not None and b'"disabled_rules":["cpu"]' in live


async def test_tenant_scope_and_roles(settings: Settings, database_url: str, redis: Redis) -> None:
    viewer = bearer(await make_token(database_url, "viewer"))
    acme = bearer(await make_token(database_url, "operator", "acme"))
    globex = bearer(await make_token(database_url, "operator", "globex"))
    config = Config(tenants=[Tenant(id="acme"), Tenant(id="globex")], rules=[FILE_RULE])
    mine = {"name": "acme-disk", "body": DISK | {"match": {"tenant": "acme"}}}
    async with console_client(settings, database_url, redis, config) as (client, _):
        assert (await client.get("/api/v1/rules")).status_code == 401
        assert (await client.post("/api/v1/rules", headers=viewer, json=mine)).status_code == 403
        assert (await client.post("/api/v1/rules/cpu/disable", headers=viewer)).status_code == 403
        everyone = await client.post("/api/v1/rules", headers=acme, json=mine | {"body": DISK})
        assert everyone.status_code == 400 and "match.tenant" in everyone.text
        assert (await client.post("/api/v1/rules", headers=acme, json=mine)).status_code == 201
        seen = (await client.get("/api/v1/rules", headers=globex)).json()
        assert seen == []
        for method, url in [
            ("GET", "/api/v1/rules/acme-disk"),
            ("GET", "/api/v1/rules/cpu"),
            ("DELETE", "/api/v1/rules/acme-disk"),
            ("POST", "/api/v1/rules/acme-disk/disable"),
            ("POST", "/api/v1/rules/cpu/enable"),
        ]:
            assert (await client.request(method, url, headers=globex)).status_code == 404, url
        hidden = await client.put("/api/v1/rules/acme-disk", headers=globex, json={"body": DISK})
        assert hidden.status_code in (400, 404)
        listed = (await client.get("/api/v1/rules", headers=acme)).json()
        assert sorted(r["name"] for r in listed) == ["acme-disk", "cpu"]


async def test_preview_dry_runs_over_recent_results(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    for minute, status in enumerate("HUUUUHH"):
        result = CheckResult(
            tenant="acme",
            service="web",
            check="http",
            tier="core",
            status="healthy" if status == "H" else "unhealthy",
            latency_ms=5,
            observed_at=start + timedelta(minutes=minute),
        )
        await redis.xadd(names.results, encode(result))
    down = {"type": "consecutive", "failures": 3, "successes": 1}
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        got = await client.post(
            "/api/v1/rules/preview", headers=viewer, json={"name": "down", "body": down, "hours": 2}
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["source"], body["fired"], body["resolved"]) == ("stream", 1, 1)
        fired_at = datetime.fromisoformat(body["transitions"][0]["at"])
        assert fired_at == start + timedelta(minutes=3)  # the third failure in a row
        op = bearer(await make_token(database_url, "operator"))
        await client.post("/api/v1/rules", headers=op, json={"name": "down", "body": down})
        saved = await client.post("/api/v1/rules/down/preview", headers=viewer, json={})
        assert saved.json()["fired"] == 1
        short = await client.post("/api/v1/rules/down/preview", headers=viewer, json={"hours": 0})
        assert short.status_code == 400


async def test_a_console_start_republishes_what_redis_lost(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    op = bearer(await make_token(database_url, "operator"))
    async with console_client(settings, database_url, redis) as (client, ctx):
        await client.post("/api/v1/rules", headers=op, json={"name": "disk", "body": DISK})
        await redis.delete(names.key("console:live"))
        await republish(ctx)
        live = await liveconfig.fetch(redis, names)
    assert live is not None and [r.name for r in live.rules] == ["disk"]


async def test_preview_of_a_metric_rule_replays_archived_samples(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    now = datetime.now(UTC)
    archiver = Archiver(database_url, names, clock=lambda: now)
    values = [50, 90, 95, 40]  # above 80 from the second sample, below again at the fourth
    samples = [
        (
            f"{i + 1}-0".encode(),
            MetricSample(
                tenant="acme",
                service="shop",
                metric="disk",
                value=v,
                observed_at=now - timedelta(minutes=30 - i),
            ),
        )
        for i, v in enumerate(values)
    ]
    await archiver.writers[MetricSample](samples, redis.pipeline())
    await archiver.close()
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        got = await client.post(
            "/api/v1/rules/preview", headers=viewer, json={"name": "disk", "body": DISK}
        )
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["fired"], body["resolved"]) == (1, 1)
    states = [(t["state"], datetime.fromisoformat(t["at"])) for t in body["transitions"]]
    assert states == [
        ("firing", now - timedelta(minutes=29)),
        ("resolved", now - timedelta(minutes=27)),
    ]
