"""Serve the intake app inside the notifier process."""

from __future__ import annotations

from redis.asyncio import Redis

from services.notifier.intake.app import create_app
from services.notifier.intake.config import IntakeConfig
from shared import asgi
from shared.streams import StreamNames


async def serve(config: IntakeConfig, redis: Redis, names: StreamNames) -> None:
    """Run until cancelled, then shut down cleanly."""
    await asgi.serve(create_app(config, redis, names), asgi.bind(config.host, config.port))
