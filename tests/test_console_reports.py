"""Uptime, SLA, latency and patterns endpoints over archived history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from psycopg import AsyncConnection
from redis.asyncio import Redis

from services.archiver.lifecycle import record_events
from shared.settings import Settings
from tests.console_support import bearer, console_client, make_token
from tests.test_archiver_queries import add_rollup
from tests.test_console_alerts import event


async def history(database_url: str) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    async with await AsyncConnection.connect(database_url) as conn:
        await add_rollup(conn, "web", hour, 90, 10)
        await add_rollup(conn, "db", hour, 50, 0, service="db", tenant="globex")
        await conn.commit()


async def test_uptime_sla_latency_patterns(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    await history(database_url)
    recent = datetime.now(UTC) - timedelta(hours=1)
    events = [msgspec.structs.replace(event("acme", s), started_at=recent) for s in ("a", "b")]
    async with await AsyncConnection.connect(database_url) as conn:
        await record_events(conn, events)
        await conn.commit()
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        up = (await client.get("/api/v1/uptime?level=check", headers=viewer)).json()
        assert [(u["tenant"], u["check"], u["percent"]) for u in up] == [
            ("acme", "web", 90.0),
            ("globex", "db", 100.0),
        ]
        sla = (await client.get("/api/v1/sla?target=95&tenant=acme", headers=viewer)).json()
        assert len(sla) == 1 and sla[0]["met"] is False
        assert sla[0]["allowed_failures"] == 5.0 and sla[0]["budget_remaining_percent"] == -100.0
        lat = await client.get(
            "/api/v1/latency?tenant=acme&service=shop&check=web&hours=6", headers=viewer
        )
        assert [p["count"] for p in lat.json()] == [100]
        pat = await client.get("/api/v1/patterns?hours=24", headers=viewer)
        assert pat.status_code == 200
        assert pat.json()["by_rule"] == {"down": 2}
        assert (await client.get("/api/v1/uptime?window=1y", headers=viewer)).status_code == 400


async def test_tenant_scope(settings: Settings, database_url: str, redis: Redis) -> None:
    await history(database_url)
    acme = bearer(await make_token(database_url, "viewer", "acme"))
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/uptime")).status_code == 401
        up = (await client.get("/api/v1/uptime", headers=acme)).json()
        assert {u["tenant"] for u in up} == {"acme"}
        for url in [
            "/api/v1/uptime?tenant=globex",
            "/api/v1/sla?tenant=globex",
            "/api/v1/latency?tenant=globex&service=db&check=db",
            "/api/v1/patterns?tenant=globex",
        ]:
            assert (await client.get(url, headers=acme)).status_code == 404, url


async def test_a_value_postgresql_cannot_hold_is_a_400_not_a_500(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    admin = bearer(await make_token(database_url, "admin"))
    async with console_client(settings, database_url, redis) as (client, _):
        got = await client.get("/api/v1/sla", params={"service": "shop\x00"}, headers=admin)
    assert got.status_code == 400
    assert "invalid value" in got.json()["detail"]
