"""Health read models and /api/v1/health*: from the probe's cache and the archive."""

from __future__ import annotations

from datetime import timedelta

from redis.asyncio import Redis

from services.console import health
from services.console.health import CheckHealth
from shared.settings import Settings
from shared.streams import StreamNames
from tests.console_health_support import archive, cache, estate, minutes_ago, result
from tests.console_support import bearer, console_client, make_token


def _check(tenant: str, service: str, check: str, status: str) -> CheckHealth:
    return CheckHealth(
        tenant=tenant,
        service=service,
        check=check,
        tier="core",
        kind="http",
        status=status,  # type: ignore[arg-type]
    )


def test_verdict_is_the_worst_check_with_a_reason_naming_it() -> None:
    healthy = [_check("a", "shop", "web", "healthy")]
    assert health.verdict(healthy).status == "healthy"
    assert health.verdict([]).reason == "no checks configured"
    stale = health.verdict([*healthy, _check("a", "shop", "db", "stale")])
    assert (stale.status, stale.reason) == ("degraded", "1 of 2 checks stale: a/db (shop)")
    many = [_check("b", "api", f"c{i}", "unhealthy") for i in range(5)]
    bad = health.verdict([*healthy, *many])
    assert bad.status == "critical"
    assert bad.reason.startswith("5 of 6 checks unhealthy: b/c0 (api), b/c1 (api), b/c2 (api)")
    assert bad.reason.endswith("and 2 more")
    assert bad.counts == {"healthy": 1, "unhealthy": 5}


def test_services_and_matrix_show_each_groups_worst_status() -> None:
    checks = [
        _check("a", "shop", "web", "healthy"),
        _check("a", "shop", "db", "degraded"),
        _check("b", "shop", "web", "healthy"),
        _check("b", "api", "api", "unhealthy"),
    ]
    across = health.services(checks)
    assert [(s.service, s.status, s.checks, s.failing) for s in across] == [
        ("api", "unhealthy", 1, 1),
        ("shop", "degraded", 3, 1),
    ]
    grid = health.matrix(checks, ["a", "b", "c"])
    assert grid.tenants == ["a", "b", "c"] and grid.services == ["api", "shop"]
    cells = grid.by_pair()
    assert cells[("a", "shop")].status == "degraded"
    assert cells[("b", "api")].status == "unhealthy"
    assert ("a", "api") not in cells


async def test_health_reads_the_cache_and_a_missing_key_is_stale(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    await cache(redis, names, result("acme", "shop", "web", "healthy", 12.0, minutes_ago(0.2)))
    await cache(redis, names, result("acme", "shop", "db", "unhealthy", 3.0, minutes_ago(0.2)))
    await cache(redis, names, result("acme", "payments", "pay", "degraded", 800.0, minutes_ago(1)))
    # globex/api has no key: it expired (or never ran) -> stale
    admin = await make_token(database_url, "admin")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        overview = (await client.get("/api/v1/health", headers=bearer(admin))).json()
        assert overview["status"] == "critical"
        assert overview["reason"] == "1 of 4 checks unhealthy: acme/db (shop)"
        assert overview["counts"] == {"healthy": 1, "unhealthy": 1, "degraded": 1, "stale": 1}
        by_name = {s["service"]: s for s in overview["services"]}
        assert by_name["shop"]["status"] == "unhealthy" and by_name["shop"]["latency_ms"] == 12.0
        assert by_name["api"]["status"] == "stale" and by_name["api"]["last_check"] is None
        grid = (await client.get("/api/v1/health/matrix", headers=bearer(admin))).json()
        assert grid["tenants"] == ["acme", "globex"]
        assert {(c["tenant"], c["service"], c["status"]) for c in grid["cells"]} == {
            ("acme", "shop", "unhealthy"),
            ("acme", "payments", "degraded"),
            ("globex", "api", "stale"),
        }
        # The web check recovers: the next read shows it, nothing is cached in the console.
        await cache(redis, names, result("acme", "shop", "db", "healthy", 2.0, minutes_ago(0)))
        again = (await client.get("/api/v1/health", headers=bearer(admin))).json()
        assert again["status"] == "degraded"


async def test_headline_metrics_come_from_the_rollups_and_the_consumer_groups(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    at = minutes_ago(1)
    await archive(
        database_url,
        [
            result("acme", "shop", "web", "healthy", 10.0, at + timedelta(seconds=i))
            for i in range(18)
        ]
        + [result("acme", "shop", "web", "unhealthy", 500.0, at - timedelta(seconds=1))] * 1
        + [result("globex", "api", "api", "unhealthy", 900.0, at)],
    )
    await redis.xgroup_create(names.results, "archiver", id="0", mkstream=True)
    for _ in range(3):
        await redis.xadd(names.results, {"data": b"{}"})
    admin = await make_token(database_url, "admin")
    acme = await make_token(database_url, "viewer", "acme")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        everyone = (await client.get("/api/v1/health", headers=bearer(admin))).json()["headline"]
        assert everyone["executions"] == 20
        assert everyone["error_rate"] == 2 / 20
        assert 10.0 < everyone["p95_ms"] <= 900.0
        assert everyone["queue_depth"] == 3  # three entries the group has not read
        mine = (await client.get("/api/v1/health", headers=bearer(acme))).json()["headline"]
        assert (mine["executions"], mine["error_rate"]) == (19, 1 / 19)


async def test_service_detail_has_uptime_latency_and_recent_results(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    at = minutes_ago(5)
    results = [
        result(
            "acme",
            "shop",
            "web",
            "healthy" if i % 4 else "unhealthy",
            20.0 + i,
            at + timedelta(seconds=i),
        )
        for i in range(40)
    ]
    await archive(database_url, results)
    await cache(redis, names, results[-1])
    viewer = await make_token(database_url, "viewer")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        got = await client.get("/api/v1/health/services/acme/shop", headers=bearer(viewer))
        assert got.status_code == 200, got.text
        detail = got.json()
        assert detail["uptime"] == {"24h": 75.0, "7d": 75.0, "30d": 75.0}
        assert [c["check"] for c in detail["checks"]] == ["web", "db"]
        assert [c["status"] for c in detail["checks"]] == ["healthy", "stale"]
        web = next(s for s in detail["latency"] if s["check"] == "web")
        assert sum(p["count"] for p in web["points"]) == 40
        assert len(detail["recent"]) == 20
        assert detail["recent"][0]["latency_ms"] == 59.0  # newest first
        missing = await client.get("/api/v1/health/services/acme/nope", headers=bearer(viewer))
        assert missing.status_code == 404


async def test_a_tenant_token_sees_only_its_tenant(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    await cache(redis, names, result("globex", "api", "api", "unhealthy", 3.0, minutes_ago(0)))
    acme = await make_token(database_url, "viewer", "acme")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        overview = (await client.get("/api/v1/health", headers=bearer(acme))).json()
        assert (
            overview["status"] == "degraded"
        )  # acme's checks are stale; globex's failure is not shown
        assert "globex" not in str(overview)
        grid = (await client.get("/api/v1/health/matrix", headers=bearer(acme))).json()
        assert grid["tenants"] == ["acme"] and {c["tenant"] for c in grid["cells"]} == {"acme"}
        own = await client.get("/api/v1/health/tenants/acme", headers=bearer(acme))
        assert own.status_code == 200 and own.json()["tenant"] == "acme"
        for path in ("/api/v1/health/tenants/globex", "/api/v1/health/services/globex/api"):
            hidden = await client.get(path, headers=bearer(acme))
            assert hidden.status_code == 404, path
        unknown = await client.get("/api/v1/health/tenants/nobody", headers=bearer(acme))
        assert unknown.status_code == 404  # same answer as a tenant that exists elsewhere
        assert (await client.get("/api/v1/health")).status_code == 401


async def test_an_unreachable_cache_is_a_clear_503(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    viewer = await make_token(database_url, "viewer")
    # Nothing listens on port 1: every Redis call is refused.
    async with (
        Redis.from_url("redis://127.0.0.1:1/0") as down,
        console_client(settings, database_url, down, estate()) as (client, _),
    ):
        got = await client.get("/api/v1/health/matrix", headers=bearer(viewer))
        assert got.status_code == 503
        assert "probe's cache (Redis) is unreachable" in got.json()["detail"]
