"""The dashboard in headless Chromium: log in, watch a firing alert appear without a
reload, acknowledge it, toggle a rule, validate and preview a new one; screenshots go
to test-artifacts/dashboard/."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from shared.settings import Settings
from shared.streams import StreamNames
from tests.console_browser_support import browser_page, console_server, require_chromium, screenshot
from tests.console_health_support import archive, cache, estate, fire, minutes_ago, result
from tests.console_support import make_token

LIVE_TIMEOUT_MS = 8_000  # the page refreshes every 2.5 s; 5 s is the promise, plus slack


async def test_log_in_see_an_alert_fire_live_and_acknowledge_it(
    settings: Settings, database_url: str, redis: Redis, tmp_path: Path
) -> None:
    require_chromium()
    names = StreamNames(settings.stream_prefix)
    await cache(redis, names, result("acme", "shop", "web", "healthy", 12.0, minutes_ago(0)))
    history = [
        result("acme", "shop", "web", "healthy" if m % 7 else "unhealthy", 10.0 + m % 30, at)
        for m in range(0, 24 * 60, 10)
        if (at := minutes_ago(m))
    ]
    await archive(database_url, history)
    token = await make_token(database_url, "operator", name="alice")
    async with (
        console_server(settings, database_url, redis, estate()) as (url, ctx),
        browser_page(tmp_path / "profile") as page,
    ):
        await page.goto(url + "/")
        assert page.url == url + "/login"
        await page.fill("#token", token)
        await page.click("button[type=submit]")
        await page.wait_for_url(url + "/")
        banner = page.locator("#banner")
        assert "DEGRADED" in await banner.inner_text()  # three checks have no result yet
        await screenshot(page, "1-overview")

        # An alert fires while the page is open: it appears without a reload.
        await page.evaluate("window.stillTheSamePage = true")
        await fire(database_url, "acme", "shop", "web is down")
        row = page.locator("#active-alerts tr.alert", has_text="web is down")
        await row.wait_for(timeout=LIVE_TIMEOUT_MS)
        assert await page.evaluate("window.stillTheSamePage") is True
        await screenshot(page, "2-alert-fired")

        await page.click("nav >> text=Alerts")
        await page.wait_for_url(url + "/alerts")
        await (
            page.locator("#active-alerts tr.alert", has_text="web is down")
            .locator("button", has_text="Acknowledge")
            .click()
        )
        await page.wait_for_url(url + "/alerts/*")  # the alert's page, with its timeline
        assert await page.locator("#alert .state").inner_text() == "acknowledged"
        assert await page.locator("#alert td", has_text="token:alice").count() == 1
        await screenshot(page, "3-acknowledged")
        async with ctx.pool.connection() as conn:
            row_ = await (
                await conn.execute("SELECT state, acknowledged_by FROM alerts")
            ).fetchone()
        assert row_ == ("acknowledged", "token:alice")

        await page.click("nav >> text=Matrix")
        cell = page.locator('a.cell[href="/services/acme/shop"]')
        assert await cell.inner_text() == "stale"  # db has no result: its key is missing
        await screenshot(page, "4-matrix")
        await cell.click()
        await page.wait_for_url(url + "/services/acme/shop")
        assert await page.locator("#chart svg").count() == 1
        await screenshot(page, "5-service-detail")

        # Toggle a rule off: the page calls the API with its CSRF header and re-renders.
        await page.click("nav >> text=Rules")
        toggle = page.locator('tr[data-rule="acme-down"] button.toggle')
        assert await toggle.inner_text() == "on"
        await toggle.click()
        await page.locator('tr[data-rule="acme-down"] button.toggle.off').wait_for(
            timeout=LIVE_TIMEOUT_MS
        )
        assert await page.locator("#action-result").inner_text() == "rule acme-down disabled"
        await screenshot(page, "6-rule-disabled")
        async with ctx.pool.connection() as conn:
            flag = await (
                await conn.execute("SELECT enabled FROM console_objects WHERE name = 'acme-down'")
            ).fetchone()
        assert flag == (False,)

        # A new rule: the editor validates and previews it through the API.
        await page.goto(url + "/rules/new")
        await page.fill("input[name=name]", "browser-rule")
        await page.click("button[data-editor=validate]")
        output = page.locator("#editor-result")
        await page.wait_for_function("document.getElementById('editor-result').textContent !== ''")
        assert await output.inner_text() == "valid"
        await page.click("button[data-editor=preview]")
        await page.wait_for_function(
            "document.getElementById('editor-result').textContent.startsWith('over the last')"
        )
        await screenshot(page, "7-rule-preview")

        # A weekly maintenance window through the silences page's form.
        await page.goto(url + "/silences")
        form = page.locator("#maintenance-form")
        await form.locator("input[name=id]").fill("sunday-backup")
        await form.locator("input[name=matchers]").fill("tenant=acme service=shop")
        await form.locator("input[name=days]").fill("sun")
        await form.locator("button[type=submit]").click()
        await page.wait_for_function(
            "document.getElementById('action-result').textContent === 'maintenance window added'"
        )
        await page.locator("tr.maintenance >> text=sunday-backup").wait_for(timeout=LIVE_TIMEOUT_MS)
        await screenshot(page, "8-maintenance")
        async with ctx.pool.connection() as conn:
            window = await (
                await conn.execute(
                    "SELECT body FROM console_objects WHERE kind = 'maintenance'"
                    " AND name = 'sunday-backup'"
                )
            ).fetchone()
        assert window is not None
        assert window[0]["days"] == ["sun"] and window[0]["duration"] == "2h"
