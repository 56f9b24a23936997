"""Serve the intake app with uvicorn inside the notifier process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from redis.asyncio import Redis

from services.notifier.intake.app import create_app
from services.notifier.intake.config import IntakeConfig
from shared.streams import StreamNames


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The runner owns SIGINT/SIGTERM and stops us by cancelling.
        yield


async def serve(config: IntakeConfig, redis: Redis, names: StreamNames) -> None:
    """Run until cancelled, then shut down cleanly."""
    server = _Server(
        uvicorn.Config(
            create_app(config, redis, names),
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
