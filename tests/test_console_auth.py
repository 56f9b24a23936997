"""Tokens and roles of the console API, against real PostgreSQL."""

from __future__ import annotations

from redis.asyncio import Redis
from typer.testing import CliRunner

from shared.cli import app
from shared.settings import Settings
from tests.console_support import bearer, console_client, make_token


async def test_no_token_or_a_bad_one_is_401(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/whoami")).status_code == 401
        bad = await client.get("/api/v1/whoami", headers=bearer("vgl_not-a-token"))
        assert bad.status_code == 401
        # The API description is public: clients generate code from it.
        schema = await client.get("/api/schema/openapi.json")
        assert schema.status_code == 200
        assert "/api/v1/whoami" in schema.json()["paths"]


async def test_whoami_and_tokens_are_stored_hashed(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    token = await make_token(database_url, "operator", "acme", name="ops")
    async with console_client(settings, database_url, redis) as (client, ctx):
        me = await client.get("/api/v1/whoami", headers=bearer(token))
        assert me.json() == {"name": "ops", "role": "operator", "tenant": "acme"}
        async with ctx.pool.connection() as conn:
            rows = await (await conn.execute("SELECT token_hash FROM api_tokens")).fetchall()
    assert rows and all(token not in str(row) for row in rows)


async def test_only_admins_manage_tokens_and_revocation_takes_effect(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    admin = await make_token(database_url, "admin")
    viewer = await make_token(database_url, "viewer")
    async with console_client(settings, database_url, redis) as (client, _):
        assert (await client.get("/api/v1/tokens", headers=bearer(viewer))).status_code == 403
        made = await client.post(
            "/api/v1/tokens", headers=bearer(admin), json={"name": "ci", "role": "operator"}
        )
        assert made.status_code == 201
        new_id, new_token = made.json()["info"]["id"], made.json()["token"]
        listed = (await client.get("/api/v1/tokens", headers=bearer(admin))).json()
        assert [t["name"] for t in listed] == ["ci", "test", "test"]
        assert all("token" not in t and "token_hash" not in t for t in listed)
        gone = await client.delete(f"/api/v1/tokens/{new_id}", headers=bearer(admin))
        assert gone.status_code == 204
    # Another replica (a fresh token cache) refuses it at once; this one within seconds.
    async with console_client(settings, database_url, redis) as (replica, _):
        assert (await replica.get("/api/v1/whoami", headers=bearer(new_token))).status_code == 401


async def test_a_tenant_admin_sees_and_mints_only_its_tenant(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    await make_token(database_url, "viewer", "globex", name="other")
    acme = await make_token(database_url, "admin", "acme", name="acme-admin")
    async with console_client(settings, database_url, redis) as (client, _):
        listed = (await client.get("/api/v1/tokens", headers=bearer(acme))).json()
        assert [t["name"] for t in listed] == ["acme-admin"]
        other = await client.post(
            "/api/v1/tokens", headers=bearer(acme), json={"name": "x", "tenant": "globex"}
        )
        assert other.status_code == 400
        hidden = await client.delete("/api/v1/tokens/1", headers=bearer(acme))
        assert hidden.status_code == 404


def test_token_create_cli_prints_a_working_token_once(database_url: str) -> None:
    env = {"VIGIL_DATABASE_URL": database_url}
    made = CliRunner().invoke(app, ["token", "create", "--name", "first"], env=env)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("vgl_") and "admin" in made.stderr
    listed = CliRunner().invoke(app, ["token", "list"], env=env)
    assert "first\tadmin\t*\tactive\tused never" in listed.stdout
    assert token not in listed.stdout
