"""Queue depth: the length of a Redis list (Sidekiq, Celery/RQ queues)."""

from __future__ import annotations

from typing import ClassVar

from redis.exceptions import RedisError

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed, require_url
from services.probe.monitors.redisinfo import connect


class QueueCheck(CheckConfig, frozen=True, kw_only=True, tag="queue", tag_field="type"):
    url: str
    key: str  # e.g. "celery" or "queue:default" (Sidekiq)
    warn_depth: int = 1_000  # longer: degraded
    max_depth: int = 10_000  # longer: unhealthy

    def __post_init__(self) -> None:
        require_url(self.url, ("redis", "rediss", "unix"))


class QueueMonitor:
    type: ClassVar[str] = "queue"
    description: ClassVar[str] = "Queue depth: length of a Redis list (Sidekiq, Celery)"

    async def run(self, check: QueueCheck, ctx: ProbeContext) -> Outcome:
        try:
            async with connect(check.url, float(check.timeout)) as client:
                depth = int(await client.llen(check.key))
        except (RedisError, OSError) as exc:
            return failed("unhealthy", exc, "redis")
        details: dict[str, object] = {"depth": depth}
        if depth > check.max_depth:
            return Outcome("unhealthy", details | {"error": f"depth {depth} > {check.max_depth}"})
        if depth > check.warn_depth:
            return Outcome("degraded", details | {"error": f"depth {depth} > {check.warn_depth}"})
        return Outcome("healthy", details)
