"""Heartbeat (push, dead man's switch): external jobs ping; no ping in time is unhealthy.

Pings land on the probe's HTTP endpoint (``services/probe/pings.py``) and are kept in
Redis, so whichever probe worker runs this check sees every ping.
"""

from __future__ import annotations

import time
from typing import ClassVar

from redis.exceptions import RedisError

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed
from shared.configbase import Seconds
from shared.streams import StreamNames

EVENTS = ("success", "start", "fail")


class HeartbeatCheck(CheckConfig, frozen=True, kw_only=True, tag="heartbeat", tag_field="type"):
    period: Seconds  # the job is expected to succeed at least this often
    grace: Seconds = Seconds(60)  # and may be this late
    token: str | None = None  # if set, pings must carry it (Bearer or ?token=)


def pings_key(names: StreamNames, check_key: str) -> str:
    return names.key(f"probe:heartbeat:{check_key}")


class HeartbeatMonitor:
    type: ClassVar[str] = "heartbeat"
    description: ClassVar[str] = "Heartbeat/push: jobs ping success/start/fail within period+grace"

    async def run(self, check: HeartbeatCheck, ctx: ProbeContext) -> Outcome:
        key = pings_key(ctx.names, check.key)
        now_ms = int(time.time() * 1000)
        try:
            # The first run starts the clock for a job that has never pinged.
            pipe = ctx.redis.pipeline(transaction=True)
            pipe.hsetnx(key, "first_seen", now_ms)
            pipe.hgetall(key)
            _, raw = await pipe.execute()
        except RedisError as exc:
            return failed("unknown", exc, "ping store unavailable")
        seen = {k.decode(): int(v) for k, v in raw.items()}
        return judge(check, seen, now_ms)


def judge(check: HeartbeatCheck, seen: dict[str, int], now_ms: int) -> Outcome:
    """Pure: the last ping times (ms) against period and grace."""
    success, start, fail = (seen.get(e, 0) for e in EVENTS)
    since = success or seen.get("first_seen", now_ms)
    age_s = (now_ms - since) / 1000
    details: dict[str, object] = {"seconds_since_success": round(age_s, 1) if success else None}
    if fail > success and fail >= start:
        return Outcome("unhealthy", details | {"error": "the job reported a failure"})
    if start > success and (now_ms - start) / 1000 > check.grace:
        return Outcome("unhealthy", details | {"error": "the job started but did not finish"})
    if age_s > check.period + check.grace:
        what = "no success ping" if success else "never pinged"
        return Outcome("unhealthy", details | {"error": f"{what} for {age_s:.0f}s"})
    return Outcome("healthy", details)
