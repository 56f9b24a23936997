"""What every console request may use: settings, config, the database pool, Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from shared.config import Config
from shared.settings import Settings
from shared.streams import StreamNames


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    settings: Settings
    config: Config
    pool: AsyncConnectionPool[Any]
    redis: Redis
    names: StreamNames
