"""Redis stream lag: a consumer group's lag (entries not yet read) and pending count."""

from __future__ import annotations

from typing import ClassVar

from redis.exceptions import RedisError

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed, require_url
from services.probe.monitors.redisinfo import connect


class StreamLagCheck(CheckConfig, frozen=True, kw_only=True, tag="stream_lag", tag_field="type"):
    url: str
    stream: str
    group: str
    max_lag: int = 10_000  # more unread entries: degraded
    max_pending: int = 10_000  # more delivered-but-unacked entries: degraded

    def __post_init__(self) -> None:
        require_url(self.url, ("redis", "rediss", "unix"))


class StreamLagMonitor:
    type: ClassVar[str] = "stream_lag"
    description: ClassVar[str] = "Redis stream consumer group: lag and pending entries"

    async def run(self, check: StreamLagCheck, ctx: ProbeContext) -> Outcome:
        try:
            async with connect(check.url, float(check.timeout)) as client:
                groups = await client.xinfo_groups(check.stream)
        except (RedisError, OSError) as exc:
            return failed("unhealthy", exc, "redis")
        group = next((g for g in groups if _text(g.get("name")) == check.group), None)
        if group is None:
            return Outcome("unhealthy", {"error": f"no group {check.group!r} on the stream"})
        # Redis 7 reports lag; None when it cannot tell (after deletions): unknown.
        lag, pending = group.get("lag"), int(group.get("pending", 0))
        details: dict[str, object] = {"lag": lag, "pending": pending}
        if lag is None:
            return Outcome("unknown", details | {"error": "Redis cannot compute the lag"})
        problems = []
        if int(lag) > check.max_lag:
            problems.append(f"lag {lag}")
        if pending > check.max_pending:
            problems.append(f"{pending} pending")
        if problems:
            return Outcome("degraded", details | {"error": "; ".join(problems)})
        return Outcome("healthy", details)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
