"""A schedule shared by every probe worker, kept in Redis.

A sorted set scores each check by its next due time (ms); a hash holds each
check's interval. One Lua script claims the due checks and re-scores them to
their next due time atomically, so with any number of workers no check runs
twice in an interval and none is skipped; a dead worker costs at most the runs
it had claimed. A run claimed late (a worker was busy or starting) moves the
check's phase instead of being followed by a catch-up run. No leader, no
home-made protocol.
"""

from __future__ import annotations

import random

from redis.asyncio import Redis

from shared.streams import StreamNames

# KEYS: due zset, interval hash. ARGV: now_ms, limit.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local now = tonumber(ARGV[1])
local claimed = {}
for i = 1, #due, 2 do
  local member, score = due[i], tonumber(due[i + 1])
  local interval = tonumber(redis.call('HGET', KEYS[2], member))
  if interval then
    -- Keep the phase; but a run more than a quarter interval late starts a new phase,
    -- so two runs of a check are never much less than an interval apart.
    local next_due = score + interval
    if next_due < now + interval * 0.75 then next_due = now + interval end
    redis.call('ZADD', KEYS[1], next_due, member)
    table.insert(claimed, member)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return claimed
"""


class Schedule:
    """One pool of checks (the probe keeps one per tier, so workers can serve a subset)."""

    def __init__(self, redis: Redis, names: StreamNames, pool: str = "all") -> None:
        self.redis = redis
        self.due_key = names.key(f"probe:due:{pool}")
        self.interval_key = names.key(f"probe:interval:{pool}")
        self._claim = redis.register_script(_CLAIM)

    async def register(self, intervals: dict[str, float], now_ms: int) -> None:
        """Add checks with a jittered first run; keep the phase of checks already there."""
        if not intervals:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.interval_key, mapping={k: int(v * 1000) for k, v in intervals.items()})
        pipe.zadd(
            self.due_key,
            {k: now_ms + int(random.uniform(0, min(v, 5.0)) * 1000) for k, v in intervals.items()},
            nx=True,
        )
        await pipe.execute()

    async def claim(self, now_ms: int, limit: int = 500) -> list[str]:
        claimed = await self._claim(keys=[self.due_key, self.interval_key], args=[now_ms, limit])
        return [c.decode() for c in claimed]

    async def next_due_ms(self) -> int | None:
        first = await self.redis.zrange(self.due_key, 0, 0, withscores=True)
        return int(first[0][1]) if first else None
