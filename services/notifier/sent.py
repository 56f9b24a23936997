"""Idempotency records, ``{prefix}:sent:{event}:{channel}``: ``sending``, ``sent`` or
``failed``, so each (alert event, channel) is notified once even when a worker dies
after sending and its stream entry is delivered again.

A batch's claims go to Redis as one script call. Marks are written as deliveries
finish, by one task that takes whatever has queued up meanwhile (one script call
per round trip): a worker that dies repeats only the sends whose marks were in
flight, not its whole batch, which one slow retry can keep open for minutes.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared.streams import StreamNames

SENT_TTL_S = 7 * 24 * 3600
SENDING_TTL_S = 3600

# Returns each key's value before the claim ('' when it was unset).
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('SET', key, 'sending', 'NX', 'EX', ARGV[1], 'GET') or ''
end
return out
"""
_MARK = """
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
"""


class SentRecords:
    def __init__(self, redis: Redis, names: StreamNames) -> None:
        self.names = names
        self._claim = redis.register_script(_CLAIM)
        self._mark = redis.register_script(_MARK)
        self._queued: dict[str, str] = {}
        self._writer: asyncio.Task[None] | None = None

    def key(self, event_id: str, channel: str) -> str:
        return self.names.key(f"sent:{event_id}:{channel}")

    async def claim(self, keys: list[str]) -> list[bytes]:
        """Mark ``keys`` as sending where unset; returns what each said before."""
        return list(await self._claim(keys=keys, args=[SENDING_TTL_S]))

    def mark(self, key: str, delivered: bool) -> None:
        """Queue the outcome of one send; written at once unless a write is under way."""
        self._queued[key] = "sent" if delivered else "failed"
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, {}
            await self._mark(keys=list(batch), args=[SENT_TTL_S, *batch.values()])

    async def flush(self) -> None:
        """Wait until every queued mark is written; raises the writer's Redis error."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])  # neither raises nor cancels the writer
        # Raised once: the failed batch is delivered again, the next batches go on.
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.result()
