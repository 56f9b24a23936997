"""The alerts API against real PostgreSQL: filters, detail, lifecycle actions, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import AlertEvent
from services.archiver.lifecycle import record_events
from shared.settings import Settings
from tests.console_support import bearer, console_client, make_token

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def event(tenant: str, service: str, severity: str = "critical", minutes: int = 0) -> AlertEvent:
    return AlertEvent(
        fingerprint=f"fp-{tenant}-{service}",
        rule="down",
        tenant=tenant,
        service=service,
        severity=severity,  # type: ignore[arg-type]
        state="firing",
        title=f"{service} is down",
        labels={"check": "http"},
        started_at=T0 + timedelta(minutes=minutes),
    )


async def seed(database_url: str) -> dict[str, int]:
    """Three alerts (acme/shop critical, acme/api warning, globex/shop) and a delivery."""
    events = [
        event("acme", "shop"),
        event("acme", "api", "warning", 1),
        event("globex", "shop", minutes=2),
    ]
    async with await AsyncConnection.connect(database_url) as conn:
        await record_events(conn, events)
        await conn.execute(
            "INSERT INTO deliveries (stream_id, event_id, alert_event_id, fingerprint, tenant, "
            "channel, channel_type, attempt, outcome, latency_ms, error, at) VALUES "
            "('1-0', 'd1', %s, 'fp-acme-shop', 'acme', 'ops', 'webhook', 1, 'delivered', "
            "12.5, '', %s)",
            (events[0].event_id, T0 + timedelta(seconds=3)),
        )
        await conn.commit()
        rows = await (
            await conn.execute("SELECT service || '/' || tenant, id FROM alerts")
        ).fetchall()
    return {k: v for k, v in rows}


async def test_list_filters_and_pages(settings: Settings, database_url: str, redis: Redis) -> None:
    await seed(database_url)
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        every = (await client.get("/api/v1/alerts", headers=viewer)).json()
        assert every["total"] == 3
        assert [a["service"] for a in every["items"]] == ["shop", "api", "shop"]  # newest first
        cases = {
            "severity=warning": ["api"],
            "tenant=globex": ["shop"],
            "service=shop&tenant=acme": ["shop"],
            "state=active&limit=1&offset=1": ["api"],
            "state=resolved": [],
            f"since={(T0 + timedelta(minutes=1)).isoformat()}".replace("+", "%2B"): ["shop", "api"],
            f"until={(T0 + timedelta(minutes=1)).isoformat()}".replace("+", "%2B"): ["shop"],
        }
        for query, services in cases.items():
            got = (await client.get(f"/api/v1/alerts?{query}", headers=viewer)).json()
            assert [a["service"] for a in got["items"]] == services, query
        bad = await client.get("/api/v1/alerts?state=nonsense", headers=viewer)
        assert bad.status_code == 400
        assert (await client.get("/api/v1/alerts?limit=0", headers=viewer)).status_code == 400


async def test_detail_has_timeline_and_deliveries(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    ids = await seed(database_url)
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        got = (await client.get(f"/api/v1/alerts/{ids['shop/acme']}", headers=viewer)).json()
        assert got["alert"]["title"] == "shop is down"
        assert got["labels"] == {"check": "http"}
        assert [t["to_state"] for t in got["timeline"]] == ["active"]
        assert [(d["channel"], d["outcome"]) for d in got["deliveries"]] == [("ops", "delivered")]
        assert (await client.get("/api/v1/alerts/999999", headers=viewer)).status_code == 404


async def test_acknowledge_suppress_resolve_are_audited(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    alert = (await seed(database_url))["shop/acme"]
    op = bearer(await make_token(database_url, "operator", name="alice"))
    async with console_client(settings, database_url, redis) as (client, ctx):
        url = f"/api/v1/alerts/{alert}"
        acked = await client.post(f"{url}/acknowledge", headers=op, json={"note": "on it"})
        assert acked.status_code == 200
        assert acked.json()["state"] == "acknowledged"
        assert acked.json()["acknowledged_by"] == "token:alice"
        again = await client.post(f"{url}/acknowledge", headers=op, json={})
        assert again.status_code == 409  # acknowledged already
        # The acknowledgement went onto the alerts stream once, for PagerDuty and the rest.
        published = [f[b"data"] for _, f in await redis.xrange(ctx.names.alerts)]
        assert len(published) == 1
        assert b'"state":"acknowledged"' in published[0]
        assert b'"acknowledged_by":"token:alice"' in published[0]
        past = await client.post(f"{url}/suppress", headers=op, json={"until": T0.isoformat()})
        assert past.status_code == 400
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        quiet = await client.post(f"{url}/suppress", headers=op, json={"until": until})
        assert quiet.json()["state"] == "suppressed"
        done = await client.post(f"{url}/resolve", headers=op, json={"note": "fixed"})
        assert done.json()["state"] == "resolved"
        timeline = (await client.get(url, headers=op)).json()["timeline"]
        assert [(t["to_state"], t["by"]) for t in timeline[1:]] == [
            ("acknowledged", "token:alice"),
            ("suppressed", "token:alice"),
            ("resolved", "token:alice"),
        ]
        async with ctx.pool.connection() as conn:
            audit = await (
                await conn.execute(
                    "SELECT actor, action, details->>'note' FROM audit_log ORDER BY id"
                )
            ).fetchall()
    assert audit == [
        ("token:alice", "acknowledged", "on it"),
        ("token:alice", "suppressed", ""),
        ("token:alice", "resolved", "fixed"),
    ]


async def test_roles_and_tenant_scope(settings: Settings, database_url: str, redis: Redis) -> None:
    ids = await seed(database_url)
    viewer = bearer(await make_token(database_url, "viewer"))
    acme = bearer(await make_token(database_url, "operator", "acme"))
    globex_alert = f"/api/v1/alerts/{ids['shop/globex']}"
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/alerts")).status_code == 401
        denied = await client.post(f"{globex_alert}/acknowledge", headers=viewer, json={})
        assert denied.status_code == 403
        listed = (await client.get("/api/v1/alerts", headers=acme)).json()
        assert {a["tenant"] for a in listed["items"]} == {"acme"}
        assert (await client.get("/api/v1/alerts?tenant=globex", headers=acme)).status_code == 404
        assert (await client.get(globex_alert, headers=acme)).status_code == 404
        for action in ("acknowledge", "resolve"):
            hidden = await client.post(f"{globex_alert}/{action}", headers=acme, json={})
            assert hidden.status_code == 404
        own = await client.post(
            f"/api/v1/alerts/{ids['shop/acme']}/acknowledge", headers=acme, json={}
        )
        assert own.status_code == 200
