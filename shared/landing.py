"""Whether a batch whose reply was lost landed, so that a retry never publishes it twice.

MULTI makes a batch land whole or not at all, but when Redis stops (or the connection
drops) between running EXEC and the reply reaching the writer, the writer cannot tell
which. Each transaction therefore also sets a token of this writer; after a failure,
the next attempt reads the token first (``Landing.landed``).
"""

from __future__ import annotations

import uuid
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

TOKEN_TTL_S = 3600  # far longer than any outage a buffered batch survives
Sent = TypeVar("Sent")


class Landing(Generic[Sent]):
    """One writer's tokens, each with what its transaction sent (``Sent``: the batch, as
    the writer needs it to drop the batch from its buffer once it is known to have landed)."""

    def __init__(self, key: str) -> None:
        """``key``: names this writer's token; in the slot of what its transactions write."""
        self.key = f"{key}:{uuid.uuid4().hex}"
        self._in_flight: tuple[bytes, Sent] | None = None  # the transaction being sent
        self._unsure: tuple[bytes, Sent] | None = None  # one whose outcome is unknown

    def mark(self, pipe: Pipeline, sent: Sent) -> None:
        """Queue this transaction's token on ``pipe`` (a MULTI) that sends ``sent``."""
        token = uuid.uuid4().bytes
        self._in_flight = (token, sent)
        pipe.set(self.key, token, ex=TOKEN_TTL_S)

    def failed(self) -> None:
        """The marked transaction raised: it may or may not have run."""
        self._unsure = self._in_flight

    @property
    def unsure(self) -> bool:
        return self._unsure is not None

    async def landed(self, redis: Redis) -> Sent | None:
        """What the transaction that failed sent, if it ran after all; None if it did
        not (raises ``RedisError`` while Redis cannot tell; ask again later)."""
        if self._unsure is None:
            return None
        token, sent = self._unsure
        landed = await redis.get(self.key) == token
        self._unsure = None
        return sent if landed else None
