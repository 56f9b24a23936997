"""Probe worker: claims due checks, runs them, publishes results in pipelined batches.

Results (and the metric samples some checks produce) wait in a bounded local
buffer until Redis has taken them, so a Redis outage delays them instead of
losing them (up to ``BUFFER_MAX`` messages). Each result also refreshes the
check's entry in the latest-result cache, in the same pipeline. While the shared
schedule (in Redis) is unreachable, each worker runs its checks by its own clock,
so the history has no hole for the outage (with several workers a check then runs
once per worker and interval, until Redis is back).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import CheckResult, MetricSample
from services.probe import cache, pings
from services.probe.monitors import MONITORS, AnyCheck, Outcome, ProbeContext
from services.probe.monitors.heartbeat import HeartbeatCheck
from services.probe.schedule import Schedule
from shared import metrics
from shared.config import Config
from shared.errors import SettingsError
from shared.landing import Landing
from shared.streams import StreamNames, encode

log = logging.getLogger(__name__)
BUFFER_MAX = 100_000
FLUSH_EVERY_S = 0.05
IDLE_WAIT_S = 0.5
MAX_IN_FLIGHT = 1_000  # claim no more than this process can run; the rest is for others
TIER_MAX_TIMEOUT_S = {"critical": 10.0}  # a critical check completes or times out in 10 s


async def execute(
    check: AnyCheck, ctx: ProbeContext, secrets: list[str] | None = None
) -> tuple[CheckResult, list[MetricSample]]:
    """Run one check within its timeout; any failure is a result, never an exception.

    ``secrets`` are the check's credentials (``check.secrets()``), passed when known.
    """
    timeout = min(float(check.timeout), TIER_MAX_TIMEOUT_S.get(check.tier, float("inf")))
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            outcome = await MONITORS[check.kind].run(check, ctx)
    except TimeoutError:
        outcome = Outcome("unhealthy", {"error": f"timed out after {timeout:g}s"})
    except Exception as exc:  # a monitor bug says "unknown", it does not kill the worker
        log.exception("check %s crashed", check.key)
        outcome = Outcome("unknown", {"error": f"{type(exc).__name__}: {exc}"[:500]})
    result = CheckResult(
        tenant=check.tenant,
        service=check.service,
        check=check.name,
        tier=check.tier,
        status=outcome.status,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        details=scrub(outcome.details, check.secrets() if secrets is None else secrets),
        observed_at=datetime.now(UTC),
    )
    return result, outcome.samples


async def run_check(check: AnyCheck, ctx: ProbeContext) -> CheckResult:
    return (await execute(check, ctx))[0]


def scrub(details: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """Details with every credential of the check masked: errors may quote URLs or headers."""
    secrets = [s for s in secrets if len(s) >= 3]
    if not secrets:
        return details
    text = msgspec.json.encode(details).decode()
    if not any(_escaped(s[:4]) in text for s in secrets):
        return details
    clean: dict[str, Any] = msgspec.json.decode(_mask(text, secrets))
    return clean


def _mask(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(_escaped(secret), "***")
        # A detail cut to length may end in the first part of a secret: mask that too.
        for cut in range(len(secret) - 1, 3, -1):
            text = text.replace(_escaped(secret[:cut]) + '"', '***"')
    return text


def _escaped(text: str) -> str:
    return msgspec.json.encode(text).decode()[1:-1]


class Probe:
    def __init__(
        self,
        config: Config,
        redis: Redis,
        names: StreamNames,
        ctx: ProbeContext,
        ping_address: tuple[str, int] | None = None,
        tiers: Collection[str] = (),
    ) -> None:
        """``tiers``: the tiers this worker serves (all when empty)."""
        self.config, self.redis, self.names, self.ctx = config, redis, names, ctx
        if unknown := set(tiers) - set(config.tiers):
            raise SettingsError(f"VIGIL_PROBE_TIERS: unknown tiers {sorted(unknown)}")
        served = set(tiers or config.tiers)
        self.checks = {c.key: c for c in config.checks if c.tier in served}
        self.secrets = {k: c.secrets() for k, c in self.checks.items()}  # once, not per run
        # One schedule per tier: workers serving different tiers never claim each other's.
        self.schedules = {t: Schedule(redis, names, pool=t) for t in sorted(served)}
        self.buffer: deque[CheckResult | MetricSample] = deque()
        self.dropped = 0
        self.ping_address = ping_address
        self._running: set[asyncio.Task[None]] = set()
        self.local_due: dict[str, int] = {}  # next run (ms) by our own clock, while Redis is away
        # Each flush's batch and the drop count then (see ``flush``).
        self.landing: Landing[tuple[list[CheckResult | MetricSample], int]]
        self.landing = Landing(names.key("probe:landed"))

    async def register(self, now_ms: int) -> None:
        """Put this worker's checks on their tiers' schedules (the first worker's phase wins)."""
        for tier, schedule in self.schedules.items():
            await schedule.register(self._intervals(tier), now_ms)

    def _intervals(self, tier: str) -> dict[str, float]:
        return {k: self.config.interval(c) for k, c in self.checks.items() if c.tier == tier}

    async def claim_due(self, now_ms: int, limit: int) -> tuple[list[AnyCheck], int | None]:
        """The checks due now (claimed for this worker) and when the next one falls due."""
        claimed: list[AnyCheck] = []
        next_due: int | None = None
        for tier, schedule in self.schedules.items():
            keys = await schedule.claim(now_ms, limit=limit) if limit > 0 else []
            limit -= len(keys)
            claimed += [self.checks[k] for k in keys if k in self.checks]
            due = await schedule.next_due_ms()
            if due is None and (intervals := self._intervals(tier)):
                # An empty schedule with checks to run: Redis restarted without its data.
                log.warning("the %s schedule was empty: registering its checks again", tier)
                await schedule.register(intervals, now_ms)
                due = await schedule.next_due_ms()
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        return claimed, next_due

    def claim_locally(self, now_ms: int, limit: int) -> tuple[list[AnyCheck], int | None]:
        """The checks due by this worker's own clock, and when the next one falls due."""
        if not self.checks:
            return [], None
        if not self.local_due:  # the outage starts: each check runs an interval from now
            self.local_due = {
                k: now_ms + int(self.config.interval(c) * 1000) for k, c in self.checks.items()
            }
        keys = [k for k, at in self.local_due.items() if at <= now_ms][:limit]
        for key in keys:
            self.local_due[key] = now_ms + int(self.config.interval(self.checks[key]) * 1000)
        return [self.checks[k] for k in keys], min(self.local_due.values())

    async def run(self) -> None:
        await self.register(_now_ms())
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._claim_forever())
                group.create_task(self._flush_forever())
                if self.ping_address is not None:
                    # Every heartbeat check, whatever tiers this worker runs.
                    heartbeats = [c for c in self.config.checks if isinstance(c, HeartbeatCheck)]
                    app = pings.PingApp(heartbeats, self.redis, self.names)
                    group.create_task(pings.serve(app, *self.ping_address))
        finally:
            # Checks still running must not outlive the clients they use.
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _claim_forever(self) -> None:
        while True:
            _raise_if_cancelling()
            free, now = MAX_IN_FLIGHT - len(self._running), _now_ms()
            try:
                due, next_due = await self.claim_due(now, min(500, free))
                if self.local_due:
                    log.warning("schedule available again: back on the shared schedule")
                    self.local_due.clear()
            except RedisError as exc:
                if not self.local_due and self.checks:
                    log.warning("schedule unavailable (%s): running checks by our clock", exc)
                due, next_due = self.claim_locally(now, min(500, free))
            for check in due:
                task = asyncio.create_task(self._run_one(check))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            wait = IDLE_WAIT_S if next_due is None else (next_due - _now_ms()) / 1000
            await asyncio.sleep(min(max(wait, 0.01), IDLE_WAIT_S))

    async def _run_one(self, check: AnyCheck) -> None:
        result, samples = await execute(check, self.ctx, self.secrets[check.key])
        self.buffer.append(result)
        self.buffer.extend(samples)
        while len(self.buffer) > BUFFER_MAX:
            self.buffer.popleft()
            self.dropped += 1
            log.error("result buffer full: dropped the oldest message (%d so far)", self.dropped)

    async def _flush_forever(self) -> None:
        while True:
            _raise_if_cancelling()
            await self.flush()
            await asyncio.sleep(FLUSH_EVERY_S)

    async def flush(self, limit: int = 5_000) -> int:
        """Publish buffered messages in one transaction; on failure keep them for the next
        try. Returns how many were published (0: nothing, or not yet known)."""
        if self.landing.unsure:
            try:
                landed = await self.landing.landed(self.redis)
            except RedisError:
                return 0
            if landed is not None:  # it ran though its reply was lost: do not resend it
                return self._published(*landed)
        batch = list(itertools.islice(self.buffer, limit))
        if not batch:
            return 0
        dropped_before = self.dropped
        # MULTI: a batch lands whole or not at all. Without it, Redis stopping halfway
        # through the pipeline kept the results it had run, and the retry published them
        # again (seen in the Redis-restart fault test); ``landing`` covers a lost reply.
        pipe = self.redis.pipeline(transaction=True)
        for message in batch:
            if isinstance(message, MetricSample):
                pipe.xadd(self.names.metrics, encode(message))
                continue
            fields = encode(message)
            pipe.xadd(self.names.results, fields)
            pipe.set(self._latest_key(message), fields[b"data"], ex=self._ttl(message))
        self.landing.mark(pipe, (batch, dropped_before))
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("publishing %d messages failed (%s); will retry", len(batch), exc)
            self.landing.failed()
            return 0
        return self._published(batch, dropped_before)

    def _published(self, batch: list[CheckResult | MetricSample], dropped_before: int) -> int:
        for message in batch:
            if isinstance(message, CheckResult):
                metrics.PROBE_RESULTS.labels(message.tier, message.status).inc()
        # Messages dropped meanwhile (buffer full) were the oldest: part of this batch.
        for _ in range(max(0, len(batch) - (self.dropped - dropped_before))):
            self.buffer.popleft()
        return len(batch)

    def _latest_key(self, result: CheckResult) -> str:
        return self.names.key(cache.latest_key_name(result.tenant, result.check))

    def _ttl(self, result: CheckResult) -> int:
        interval = self.config.tiers.get(result.tier)
        return cache.ttl_for(result.tier, float(interval) if interval else 0.0)


def _raise_if_cancelling() -> None:
    """Stop a loop whose cancellation a library swallowed.

    Seen in the end-to-end test: a cancel landing inside a redis-py call was
    absorbed, the loop went on, and the service never stopped.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _now_ms() -> int:
    return int(time.time() * 1000)
