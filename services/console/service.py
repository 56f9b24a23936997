"""Serve the console (API and dashboard) until cancelled."""

from __future__ import annotations

import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.console.app import create_app
from services.console.context import ConsoleContext
from services.console.objects import republish
from shared import asgi
from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames

log = logging.getLogger(__name__)


async def serve(settings: Settings, config: Config, redis: Redis, names: StreamNames) -> None:
    assert settings.console_port is not None
    sock = asgi.bind(settings.console_host, settings.console_port)
    host, port = sock.getsockname()[:2]
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.database_url, min_size=1, max_size=10, open=False
    )
    await pool.open()
    try:
        ctx = ConsoleContext(settings, config, pool, redis, names)
        try:  # Redis may have lost the live set: evaluators and notifiers read it there
            await republish(ctx)
        except RedisError as exc:
            log.warning("console: live configuration not republished: %s", exc)
        app = create_app(ctx)
        log.info("console on http://%s:%d/", host, port)
        await asgi.serve(app, sock)
    finally:
        await pool.close()
