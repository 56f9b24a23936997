"""The real console served on a loopback port, and headless Chromium to drive it.

Chromium is Debian's ``chromium`` package (Playwright's own browser download does not
work on these machines). Outside CI the browser tests skip when it is absent; in CI
(``CI`` set, as ``.ci/run`` does) its absence is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.console.app import create_app
from services.console.context import ConsoleContext
from shared import asgi
from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: install Debian's chromium package")
    pytest.skip(f"browser tests need {CHROMIUM} (apt-get install chromium)")


@contextlib.asynccontextmanager
async def console_server(
    settings: Settings, database_url: str, redis: Redis, config: Config
) -> AsyncIterator[tuple[str, ConsoleContext]]:
    """The console app under uvicorn on 127.0.0.1 and a free port; yields its base URL."""
    settings = dataclasses.replace(settings, database_url=database_url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, max_size=4, open=False)
    await pool.open()
    ctx = ConsoleContext(settings, config, pool, redis, StreamNames(settings.stream_prefix))
    sock = asgi.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    task = asyncio.ensure_future(asgi.serve(create_app(ctx), sock))
    try:
        yield f"http://127.0.0.1:{port}", ctx
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()


@contextlib.asynccontextmanager
async def browser_page(profile: Path) -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium profile."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
