"""Every operation of the OpenAPI description: 401 without a token, and 403 for a
viewer on every write (the dry runs excepted: they change nothing)."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from shared.settings import Settings
from tests.console_support import bearer, console_client, make_token

# Writes a viewer may call: they only read and compute.
VIEWER_POSTS = {"/api/v1/rules/validate", "/api/v1/rules/preview", "/api/v1/rules/{name}/preview"}


async def test_every_operation_needs_a_token_and_viewers_cannot_write(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    viewer = bearer(await make_token(database_url, "viewer"))
    async with console_client(settings, database_url, redis) as (client, _):
        paths = (await client.get("/api/schema/openapi.json")).json()["paths"]
        operations = [
            (method.upper(), path)
            for path, item in paths.items()
            for method in item
            if path.startswith("/api/v1/")
        ]
        assert len(operations) > 30
        for method, path in operations:
            url = re.sub(r"\{[a-z_]+\}", "1", path)
            anonymous = await client.request(method, url, json={})
            assert anonymous.status_code == 401, (method, path)
            if method == "GET" or path in VIEWER_POSTS or path == "/api/v1/whoami":
                continue
            denied = await client.request(method, url, headers=viewer, json={})
            assert denied.status_code == 403, (method, path, denied.status_code)


BODIES = {
    "rules": {"type": "threshold", "source": "disk", "threshold": 80, "match": {"tenant": "acme"}},
    "silences": {
        "matchers": {"tenant": "acme"},
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-02T00:00:00Z",
        "created_by": "alice",
        "comment": "move",
    },
    "maintenance": {"matchers": {"tenant": "acme"}, "days": ["sat"], "duration": "1h"},
    "channels": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
}


@pytest.mark.parametrize("kind", sorted(BODIES))
async def test_another_tenants_objects_do_not_exist(
    kind: str, settings: Settings, database_url: str, redis: Redis
) -> None:
    acme = bearer(await make_token(database_url, "admin", "acme"))
    globex = bearer(await make_token(database_url, "admin", "globex"))
    async with console_client(settings, database_url, redis) as (client, _):
        made = await client.post(
            f"/api/v1/{kind}", headers=acme, json={"name": "x", "body": BODIES[kind]}
        )
        assert made.status_code == 201, made.text
        assert (await client.get(f"/api/v1/{kind}", headers=globex)).json() == []
        url = f"/api/v1/{kind}/x"
        assert (await client.get(url, headers=globex)).status_code == 404
        assert (await client.delete(url, headers=globex)).status_code == 404
        assert [o["name"] for o in (await client.get(f"/api/v1/{kind}", headers=acme)).json()] == [
            "x"
        ]
