"""Per-destination rate limits shared by every notifier process, kept in Redis.

``{prefix}:ratelimit:{channel}`` is a list of the send times (ms, newest first)
reserved for that destination, at most ``count`` long. One Lua script reserves
the next slot: now, or later when the ``count``-th newest reservation lies less
than ``per`` ago. The caller sleeps until its slot and then sends, so a burst
over the limit is queued, never dropped, and never more than ``count`` sends
start within any ``per`` across all processes. Times come from the Redis server's
clock, so the processes' clocks need not agree.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.notifier.channels import AnyChannelConfig
from shared.streams import StreamNames

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count, per = tonumber(ARGV[1]), tonumber(ARGV[2])
local slot = now
local newest = redis.call('LINDEX', KEYS[1], 0)
if newest and tonumber(newest) > slot then slot = tonumber(newest) end
local oldest = redis.call('LINDEX', KEYS[1], count - 1)
if oldest and tonumber(oldest) + per > slot then slot = tonumber(oldest) + per end
redis.call('LPUSH', KEYS[1], slot)
redis.call('LTRIM', KEYS[1], 0, count - 1)
redis.call('PEXPIRE', KEYS[1], slot - now + per)
return slot - now
"""


class Limiters:
    """Waits for a send slot of a destination that has a ``rate_limit``."""

    def __init__(self, redis: Redis, names: StreamNames) -> None:
        self.names = names
        self._reserve = redis.register_script(_RESERVE)

    async def acquire(self, config: AnyChannelConfig) -> None:
        if (limit := config.rate_limit) is None:
            return
        wait_ms = await self._reserve(
            keys=[self.names.key(f"ratelimit:{config.name}")],
            args=[limit.count, max(1, round(limit.per * 1000))],
        )
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
