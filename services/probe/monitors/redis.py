"""Redis check: PING, memory used vs maxmemory, evicted keys, connected clients."""

from __future__ import annotations

from typing import ClassVar

from redis.exceptions import RedisError

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed, require_url
from services.probe.monitors.redisinfo import connect


class RedisCheck(CheckConfig, frozen=True, kw_only=True, tag="redis", tag_field="type"):
    url: str  # redis://:${PASSWORD}@host:6379/0
    max_memory_ratio: float = 0.9  # above this share of maxmemory: degraded
    max_clients: int | None = None  # more connected clients: degraded
    max_evicted_keys: int | None = None  # more evicted keys since start: degraded

    def __post_init__(self) -> None:
        require_url(self.url, ("redis", "rediss", "unix"))


class RedisMonitor:
    type: ClassVar[str] = "redis"
    description: ClassVar[str] = "Redis: PING, memory vs maxmemory, evicted keys, clients"

    async def run(self, check: RedisCheck, ctx: ProbeContext) -> Outcome:
        try:
            async with connect(check.url, float(check.timeout)) as client:
                await client.ping()
                info = await client.info()
        except (RedisError, OSError) as exc:
            return failed("unhealthy", exc, "redis")
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        clients, evicted = int(info.get("connected_clients", 0)), int(info.get("evicted_keys", 0))
        details: dict[str, object] = {
            "used_memory": used,
            "maxmemory": limit,
            "connected_clients": clients,
            "evicted_keys": evicted,
        }
        problems = []
        if limit and used > check.max_memory_ratio * limit:
            problems.append(f"memory {used}/{limit} bytes")
        if check.max_clients is not None and clients > check.max_clients:
            problems.append(f"{clients} clients")
        if check.max_evicted_keys is not None and evicted > check.max_evicted_keys:
            problems.append(f"{evicted} evicted keys")
        if problems:
            return Outcome("degraded", details | {"error": "; ".join(problems)})
        return Outcome("healthy", details)
