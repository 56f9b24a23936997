"""Helpers for the monitors that look at a Redis server (not the pipeline's own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis


@asynccontextmanager
async def connect(url: str, timeout: float) -> AsyncIterator[Redis]:
    """A short-lived client: each run sees the server as a new client would."""
    client = Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
    )
    try:
        yield client
    finally:
        await client.aclose()
