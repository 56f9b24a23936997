"""The dashboard's pages over the real app: login, pages, CSRF, alert actions, tenant scope."""

from __future__ import annotations

import re

import httpx
from psycopg import AsyncConnection
from redis.asyncio import Redis

from services.console.dashboard import csrf
from shared.settings import Settings
from shared.streams import StreamNames
from tests.console_health_support import archive, cache, estate, fire, minutes_ago, result
from tests.console_support import console_client, make_token

CSRF_FIELD = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def login(client: httpx.AsyncClient, token: str) -> str:
    """Log in through the form; returns the page's CSRF token."""
    done = await client.post("/login", data={"token": token})
    assert done.status_code == 303 and done.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 200
    found = CSRF_FIELD.search(home.text)
    assert found is not None
    return found[1]


async def test_login_sets_a_strict_httponly_cookie_and_pages_need_it(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    token = await make_token(database_url, "viewer")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        away = await client.get("/")
        assert away.status_code == 303 and away.headers["location"] == "/login"
        form = await client.get("/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        bad = await client.post("/login", data={"token": "vgl_nope"})
        assert bad.status_code == 401 and "not valid" in bad.text
        done = await client.post("/login", data={"token": token})
        cookie = done.headers["set-cookie"]
        assert "vigil_token=" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower() and "Path=/" in cookie
        page = await client.get("/")
        assert page.status_code == 200
        assert token not in page.text  # the session token never appears in a page
        csrf_token = CSRF_FIELD.search(page.text)
        assert csrf_token is not None
        out = await client.post("/logout", data={"csrf": csrf_token[1]})
        assert out.status_code == 303 and 'vigil_token=""' in out.headers["set-cookie"]
        client.cookies.clear()
        assert (await client.get("/matrix")).headers["location"] == "/login"


async def test_pages_show_health_from_the_cache_and_ship_their_own_assets(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    at = minutes_ago(3)
    results = [result("acme", "shop", "web", "healthy", 40.0 + i, at) for i in range(10)]
    await archive(database_url, results)
    await cache(redis, names, results[-1])
    await cache(redis, names, result("acme", "shop", "db", "unhealthy", 5.0, at))
    token = await make_token(database_url, "viewer")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        await login(client, token)
        home = (await client.get("/")).text
        assert 'class="banner status-critical"' in home
        assert "1 of 4 checks unhealthy: acme/db (shop)" in home
        assert re.search(r'class="card status-unhealthy"[^>]*>\s*<span class="name">shop', home)
        # Nothing is fetched from elsewhere at run time.
        assert not re.search(r'(src|href)="(https?:)?//', home)
        for asset in ("/static/vigil.css", "/static/vigil.js"):
            assert (await client.get(asset)).status_code == 200
        grid = (await client.get("/matrix")).text
        assert 'href="/services/acme/shop" title="2 checks, 1 not healthy">unhealthy' in grid
        detail = await client.get("/services/acme/shop")
        assert detail.status_code == 200
        assert "<svg" in detail.text and "<polyline" in detail.text
        assert detail.text.count('class="fill" style="width: 100.0%"') == 3  # 24h, 7d, 30d
        assert "49 ms" in detail.text  # the newest archived result
        assert (await client.get("/services/acme/nope")).status_code == 404


async def test_a_tenant_token_sees_only_its_tenant_on_every_page(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    names = StreamNames(settings.stream_prefix)
    await cache(redis, names, result("globex", "api", "api", "unhealthy", 3.0, minutes_ago(0)))
    await fire(database_url, "globex", "api", "api is down")
    acme = await make_token(database_url, "viewer", "acme")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        await login(client, acme)
        for path in ("/", "/matrix", "/alerts", "/tenants/acme", "/rules", "/silences"):
            shown = await client.get(path)
            assert shown.status_code == 200, path
            assert "globex" not in shown.text, path
        for path in ("/tenants/globex", "/services/globex/api", "/alerts?tenant=globex"):
            hidden = await client.get(path)
            assert hidden.status_code == 404 or "api is down" not in hidden.text, path


async def test_alert_actions_need_csrf_an_operator_and_the_tenant(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    mine = await fire(database_url, "acme", "shop", "web is down")
    theirs = await fire(database_url, "globex", "api", "api is down")
    operator = await make_token(database_url, "operator", "acme", name="alice")
    viewer = await make_token(database_url, "viewer", name="bob")
    async with console_client(settings, database_url, redis, estate()) as (client, ctx):
        token = await login(client, operator)
        listed = (await client.get("/alerts")).text
        assert "web is down" in listed and "api is down" not in listed
        assert f'action="/alerts/{mine}/acknowledge"' in listed
        ack = f"/alerts/{mine}/acknowledge"
        assert (await client.post(ack, data={"note": "x"})).status_code == 403  # no CSRF token
        other = await client.post(f"/alerts/{theirs}/acknowledge", data={"csrf": token})
        assert other.status_code == 404
        done = await client.post(ack, data={"csrf": token, "note": "looking"})
        assert done.status_code == 303 and done.headers["location"] == f"/alerts/{mine}"
        shown = await client.get(f"/alerts/{mine}")
        assert shown.status_code == 200
        assert "looking" in shown.text and "token:alice" in shown.text  # the timeline
        assert (await client.get(f"/alerts/{theirs}")).status_code == 404
        again = await client.post(ack, data={"csrf": token})
        assert again.status_code == 400  # already acknowledged
        async with ctx.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT state, acknowledged_by FROM alerts WHERE id = %s", (mine,)
                )
            ).fetchone()
        assert row == ("acknowledged", "token:alice")
        client.cookies.clear()
        viewer_csrf = await login(client, viewer)
        assert "Acknowledge</button>" not in (await client.get("/alerts")).text
        refused = await client.post(f"/alerts/{theirs}/acknowledge", data={"csrf": viewer_csrf})
        assert refused.status_code == 403


async def test_api_calls_with_the_cookie_need_the_csrf_header(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    admin = await make_token(database_url, "admin")
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        await login(client, admin)
        body = {"name": "ci", "role": "viewer"}
        assert (await client.post("/api/v1/tokens", json=body)).status_code == 403
        headers = {csrf.HEADER: csrf.token_for(admin)}
        assert (await client.post("/api/v1/tokens", json=body, headers=headers)).status_code == 201
        assert (await client.get("/api/v1/whoami")).status_code == 200  # reads need none
    async with await AsyncConnection.connect(database_url) as conn:
        count = await (await conn.execute("SELECT count(*) FROM api_tokens")).fetchone()
    assert count == (2,)


async def test_rules_and_silences_pages_list_what_the_caller_may_see_and_no_secret(
    settings: Settings, database_url: str, redis: Redis
) -> None:
    acme = await make_token(database_url, "operator", "acme")
    viewer = await make_token(database_url, "viewer")
    silence = {
        "name": "deploy",
        "body": {
            "matchers": {"tenant": "acme"},
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z",
            "created_by": "alice",
            "comment": "deploying",
        },
    }
    async with console_client(settings, database_url, redis, estate()) as (client, _):
        made = await client.post(
            "/api/v1/silences", json=silence, headers={"Authorization": f"Bearer {acme}"}
        )
        assert made.status_code == 201, made.text
        await login(client, acme)
        rules = (await client.get("/rules")).text
        assert 'data-rule="acme-down"' in rules and "globex-down" not in rules
        assert 'data-api-url="/api/v1/rules/acme-down/disable"' in rules  # the enable toggle
        assert "SECRET-TOKEN" not in rules
        edit = await client.get("/rules/acme-down/edit")
        assert edit.status_code == 200 and "&#34;failures&#34;: 3" in edit.text
        assert (await client.get("/rules/globex-down/edit")).status_code == 404
        assert (await client.get("/rules/new")).status_code == 200
        silences = (await client.get("/silences")).text
        assert "deploying" in silences
        assert 'data-api-url="/api/v1/silences/deploy"' in silences
        client.cookies.clear()
        await login(client, viewer)
        rules = (await client.get("/rules")).text
        assert "globex-down" in rules and "data-api-url" not in rules  # viewers see, not act
        assert "SECRET-TOKEN" not in rules
