"""``/api/v1/pipeline`` against real Redis and PostgreSQL."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.settings import Settings
from shared.streams import Rejected, StreamNames, deadletter_fields, ensure_group
from tests.console_support import bearer, console_client, make_token


async def test_lengths_lag_pending_and_dead_letters(
    settings: Settings, database_url: str, redis: Redis, names: StreamNames
) -> None:
    await ensure_group(redis, names.results, "evaluator")
    for i in range(5):
        await redis.xadd(names.results, {"data": b"{}", "i": str(i)})
    # Two read, not acknowledged: pending 2, lag 3.
    await redis.xreadgroup("evaluator", "c1", {names.results: ">"}, count=2)
    bad = Rejected(b"1-1", {b"data": b"nonsense"}, "CheckResult: expected an object")
    await redis.xadd(names.deadletter, deadletter_fields(names.results, "evaluator", bad))
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        got = (await client.get("/api/v1/pipeline", headers=viewer)).json()
    assert got["redis"] == {"ok": True, "error": ""}
    assert got["database"] == {"ok": True, "error": ""}
    results = next(s for s in got["streams"] if s["name"] == names.results)
    assert results["length"] == 5
    assert results["groups"] == [{"name": "evaluator", "consumers": 1, "pending": 2, "lag": 3}]
    assert got["dead_letters"] == 1
    (dead,) = got["recent_dead_letters"]
    assert (dead["stream"], dead["group"]) == (names.results, "evaluator")
    assert dead["reason"] == "CheckResult: expected an object"
    assert "nonsense" not in str(got)  # the dead entry's data is not shown


async def test_redis_away_is_reported_not_a_500(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    viewer = bearer(await make_token(database_url, "viewer"))
    away = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    async with console_client(settings, database_url, away) as (client, _):
        got = await client.get("/api/v1/pipeline", headers=viewer)
    assert got.status_code == 200
    assert got.json()["redis"]["ok"] is False and got.json()["database"]["ok"] is True
    await away.aclose()


async def test_auth(settings: Settings, database_url: str, redis: Redis) -> None:
    tenant = bearer(await make_token(database_url, "admin", "acme"))
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/pipeline")).status_code == 401
        assert (await client.get("/api/v1/pipeline", headers=tenant)).status_code == 404
