"""Probe worker: claims due checks, runs them, publishes results in pipelined batches.

Results wait in a bounded local buffer until Redis has taken them, so a Redis
outage delays results instead of losing them (up to ``BUFFER_MAX`` results).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import CheckResult
from services.probe.monitors import MONITORS, AnyCheck, Outcome, ProbeContext
from services.probe.schedule import Schedule
from shared.config import Config
from shared.streams import StreamNames, encode

log = logging.getLogger(__name__)
BUFFER_MAX = 100_000
FLUSH_EVERY_S = 0.05
IDLE_WAIT_S = 0.5


async def run_check(check: AnyCheck, ctx: ProbeContext) -> CheckResult:
    """Run one check within its timeout; any failure is a result, never an exception."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            outcome = await MONITORS[check.kind].run(check, ctx)
    except TimeoutError:
        outcome = Outcome("unhealthy", {"error": f"timed out after {check.timeout:g}s"})
    except Exception as exc:  # a monitor bug says "unknown", it does not kill the worker
        log.exception("check %s crashed", check.key)
        outcome = Outcome("unknown", {"error": f"{type(exc).__name__}: {exc}"[:500]})
    return CheckResult(
        tenant=check.tenant,
        service=check.service,
        check=check.name,
        tier=check.tier,
        status=outcome.status,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        details=outcome.details,
        observed_at=datetime.now(UTC),
    )


class Probe:
    def __init__(self, config: Config, redis: Redis, names: StreamNames, ctx: ProbeContext) -> None:
        self.config, self.redis, self.names, self.ctx = config, redis, names, ctx
        self.checks = {c.key: c for c in config.checks}
        self.schedule = Schedule(redis, names)
        self.buffer: deque[CheckResult] = deque()
        self.dropped = 0
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await self.schedule.register(
            {k: self.config.interval(c) for k, c in self.checks.items()}, _now_ms()
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(self._claim_forever())
            group.create_task(self._flush_forever())

    async def _claim_forever(self) -> None:
        while True:
            try:
                for key in await self.schedule.claim(_now_ms()):
                    if (check := self.checks.get(key)) is not None:
                        task = asyncio.create_task(self._run_one(check))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                next_due = await self.schedule.next_due_ms()
            except RedisError as exc:
                log.warning("schedule unavailable: %s", exc)
                next_due = None
            wait = IDLE_WAIT_S if next_due is None else (next_due - _now_ms()) / 1000
            await asyncio.sleep(min(max(wait, 0.01), IDLE_WAIT_S))

    async def _run_one(self, check: AnyCheck) -> None:
        self.buffer.append(await run_check(check, self.ctx))
        if len(self.buffer) > BUFFER_MAX:
            self.buffer.popleft()
            self.dropped += 1
            log.error("result buffer full: dropped the oldest result (%d so far)", self.dropped)

    async def _flush_forever(self) -> None:
        while True:
            await self.flush()
            await asyncio.sleep(FLUSH_EVERY_S)

    async def flush(self) -> int:
        """Publish buffered results in one pipeline; on failure keep them for the next try."""
        batch = list(self.buffer)
        if not batch:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for result in batch:
            pipe.xadd(self.names.results, encode(result))
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("publishing %d results failed (%s); will retry", len(batch), exc)
            return 0
        for _ in batch:
            self.buffer.popleft()
        return len(batch)


def _now_ms() -> int:
    return int(time.time() * 1000)
