"""Whether a batch whose reply was lost landed, so that a retry never publishes it twice.

MULTI makes a batch land whole or not at all, but when Redis stops (or the connection
drops) between running EXEC and the reply reaching the writer, the writer cannot tell
which. Each transaction therefore also sets a token of this writer; after a failure,
the next attempt reads the token first (``Landing.landed``).
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

TOKEN_TTL_S = 3600  # far longer than any outage a buffered batch survives


class Landing:
    def __init__(self, key: str) -> None:
        """``key``: names this writer's token; in the slot of what its transactions write."""
        self.key = f"{key}:{uuid.uuid4().hex}"
        self._sent: bytes | None = None  # the token of the transaction in flight
        self._unsure: bytes | None = None  # the token of one whose outcome is unknown

    def mark(self, pipe: Pipeline) -> None:
        """Queue this transaction's token on ``pipe`` (a MULTI)."""
        self._sent = uuid.uuid4().bytes
        pipe.set(self.key, self._sent, ex=TOKEN_TTL_S)

    def failed(self) -> None:
        """The marked transaction raised: it may or may not have run."""
        self._unsure = self._sent

    @property
    def unsure(self) -> bool:
        return self._unsure is not None

    async def landed(self, redis: Redis) -> bool:
        """Whether the transaction that failed ran after all (raises ``RedisError`` while
        Redis cannot tell; ask again later)."""
        if self._unsure is None:
            return False
        landed = await redis.get(self.key) == self._unsure
        self._unsure = None
        return landed
