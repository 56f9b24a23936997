"""A console app over the test's own Redis and PostgreSQL, and tokens to call it with.

The app is the real one, served in-process through httpx's ASGI transport: no server
socket to wait for, nothing patched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.console import tokens
from services.console.app import create_app
from services.console.context import ConsoleContext
from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames


async def make_token(
    database_url: str, role: str = "admin", tenant: str | None = None, name: str = "test"
) -> str:
    async with await AsyncConnection.connect(database_url) as conn:
        _, token = await tokens.create(conn, name, role, tenant, "test")
    return token


@asynccontextmanager
async def console_client(
    settings: Settings, database_url: str, redis: Redis, config: Config | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, ConsoleContext]]:
    settings = dataclasses.replace(settings, database_url=database_url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, max_size=4, open=False)
    await pool.open()
    try:
        ctx = ConsoleContext(
            settings, config or Config(), pool, redis, StreamNames(settings.stream_prefix)
        )
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            yield client, ctx
    finally:
        await pool.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
