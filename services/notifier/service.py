"""Notifier stream adapter: alert events in, deliveries and delivery records out.

Idempotency (``sent.py``): before sending, ``SET sent:{event}:{channel} sending
NX GET``; a value of ``sent`` means an earlier delivery of this entry already got
through (the worker died before acknowledging), so it is not sent again. Claims,
marks and the batch's delivery records go to Redis as script calls over many
sends, not one command per send: per-send commands cost more Python time than
the HTTP requests themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from schemas import AlertEvent, DeliveryRecord
from services.notifier.channels import SendContext
from services.notifier.delivery import correlation, deliver
from services.notifier.grouping import GROUP_SOURCE, Groups, summary
from services.notifier.ratelimit import Limiters
from services.notifier.routing import matching_routes
from services.notifier.sent import SentRecords
from services.notifier.templates import Templates
from shared import metrics
from shared.config import Config
from shared.consumer import Consumer
from shared.streams import Codec, Rejected, StreamNames, deadletter_fields

log = logging.getLogger(__name__)
GROUP = "notifier"
GROUP_TICK_S = 0.25
MAX_IN_FLIGHT = 64
# KEYS[1] is the deliveries stream; each ARGV one encoded DeliveryRecord.
_APPEND = """
for _, body in ipairs(ARGV) do redis.call('XADD', KEYS[1], '*', 'data', body) end
return #ARGV
"""
Job = tuple[bytes, AlertEvent, str, Templates | None]  # entry, alert, channel, templates


class Notifier:
    def __init__(
        self,
        config: Config,
        redis: Redis,
        names: StreamNames,
        ctx: SendContext,
    ) -> None:
        self.redis, self.names, self.ctx = redis, names, ctx
        self.config = config
        self.limiters = Limiters(redis, names)
        self.sent = SentRecords(redis, names)
        self.groups = Groups(redis, names)
        # Sends in flight at once: more would only queue inside the HTTP pools,
        # where the wait eats into each request's timeout.
        self.gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        # Export 0 before the first failure, so a rate over the scraped counter sees it rise.
        for channel in config.channels:
            for outcome in ("delivered", "failed"):
                metrics.DELIVERIES.labels(channel.name, channel.kind, outcome)

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """Swapped whole between batches (channels changed through the console API)."""
        self._config = config
        self.channels = {c.name: c for c in config.channels}

    def secrets(self) -> list[str]:
        """Every channel secret in the configuration (for log redaction)."""
        return [s for channel in self.config.channels for s in channel.secrets()]

    def consumer(self) -> Consumer[AlertEvent]:
        return Consumer(self.names.alerts, GROUP, Codec(AlertEvent), self.handle)

    async def handle(self, items: list[tuple[bytes, AlertEvent]], pipe: Pipeline) -> None:
        # A batch held up by retries or rate limits stays claimed by this worker while it
        # lives: the BatchProcessor re-claims batches in hand (shared/consumer.py).
        jobs: list[Job] = []
        now = time.time()
        routes = self.config.routes
        for entry_id, alert in items:
            if alert.muted_by:  # the evaluator decided: silenced, maintenance or inhibited
                log.info(
                    "alert %s muted (%s): not sent",
                    alert.event_id,
                    alert.muted_by,
                    extra={"correlation_id": correlation(alert), "tenant": alert.tenant},
                )
                continue
            taken = matching_routes(routes, alert)
            if not taken:
                log.warning("alert %s (%s) matched no route", alert.event_id, alert.rule)
            chosen: dict[str, Templates | None] = {}
            for i in taken:
                route = routes[i]
                if route.group_by and alert.source != GROUP_SOURCE:
                    # A group's message speaks for many alerts: one person's
                    # acknowledgement of one of them is not news for it.
                    if alert.state != "acknowledged":
                        self.groups.add(pipe, i, route, alert, now)
                    continue
                for name in route.channels:
                    if self.channels[name].sends(alert):
                        chosen.setdefault(name, route.templates)
            jobs += [(entry_id, alert, name, templates) for name, templates in chosen.items()]
        await self.send(jobs, pipe)

    async def flush_groups(self, now: float | None = None) -> int:
        """Announce every due group: one message per group and channel; returns how many
        groups were announced."""
        flushes = await self.groups.claim(time.time() if now is None else now)
        jobs: list[Job] = []
        for flush in flushes:
            route = self.config.routes[flush.route]
            alert = summary(flush, route)
            entry = f"group:{flush.key}".encode()
            jobs += [(entry, alert, name, route.templates) for name in route.channels]
        if jobs:
            pipe = self.redis.pipeline(transaction=True)
            await self.send(jobs, pipe)
            await pipe.execute()
        return len(flushes)

    async def flush_forever(self, tick: float = GROUP_TICK_S) -> None:
        while True:
            try:
                await self.flush_groups()
            except (OSError, RedisError) as exc:  # Redis away: try again next tick
                log.warning("group flush failed: %s", exc)
            await asyncio.sleep(tick)

    @property
    def groups_in_use(self) -> bool:
        return any(route.group_by for route in self.config.routes)

    async def send(self, jobs: list[Job], pipe: Pipeline) -> None:
        """Deliver each (entry, alert, channel, templates) at most once; queue the records
        and dead letters on ``pipe``."""
        # The same event twice in one batch (a producer's retry) is one delivery per channel.
        unique: dict[tuple[str, str], Job] = {}
        for job in jobs:
            unique.setdefault((job[1].event_id, job[2]), job)
        jobs = list(unique.values())
        if not jobs:
            return
        previous = await self.sent.claim([self.sent.key(j[1].event_id, j[2]) for j in jobs])
        todo = [job for job, before in zip(jobs, previous, strict=True) if before != b"sent"]
        records: list[DeliveryRecord] = []
        for (_, alert, name, _t), before in zip(jobs, previous, strict=True):
            if before == b"sent":  # delivered before a crash: say so, do not send again
                records.append(self._skipped(alert, name))
        results = await asyncio.gather(*(self._deliver(job) for job in todo))
        await self.sent.flush()
        for (entry_id, alert, name, _t), attempts in zip(todo, results, strict=True):
            final = attempts[-1]
            records += attempts
            if log.isEnabledFor(logging.INFO):  # the extras cost more than the check
                log.info(
                    "alert %s to %s: %s after %d attempt(s)",
                    alert.event_id,
                    name,
                    final.outcome,
                    final.attempt,
                    extra=_context(alert, final),
                )
            if final.outcome == "failed":
                self._dead_letter(pipe, entry_id, alert, final)
        for record in records:
            _count(record)
        # One command for all records: per-entry XADDs cost more Python than the sends.
        # EVAL with the source, queued on the pipeline and sent with its transaction: a
        # cluster pipeline refuses EVALSHA, and the script is a few dozen bytes.
        if records:
            bodies = [msgspec.json.encode(r) for r in records]
            pipe.eval(_APPEND, 1, self.names.deliveries, *bodies)  # type: ignore[no-untyped-call]

    async def _deliver(self, job: Job) -> list[DeliveryRecord]:
        _, alert, name, templates = job
        config = self.channels[name]
        attempts = await deliver(alert, config, self.ctx, templates, self.limiters, gate=self.gate)
        self.sent.mark(self.sent.key(alert.event_id, name), attempts[-1].outcome == "delivered")
        return attempts

    def _skipped(self, alert: AlertEvent, name: str) -> DeliveryRecord:
        return DeliveryRecord(
            alert_event_id=alert.event_id,
            fingerprint=alert.fingerprint,
            tenant=alert.tenant,
            channel=name,
            channel_type=self.channels[name].kind,
            target=self.channels[name].target(),
            attempt=1,
            outcome="skipped",
            error="already delivered",
            at=datetime.now(UTC),
            correlation_id=correlation(alert),
        )

    def _dead_letter(
        self, pipe: Pipeline, entry_id: bytes, alert: AlertEvent, final: DeliveryRecord
    ) -> None:
        reason = (
            f"delivery to channel {final.channel!r} failed after {final.attempt} "
            f"attempt(s): {final.error}"
        )
        log.error("alert %s: %s", alert.event_id, reason, extra=_context(alert, final))
        fields = {b"data": msgspec.json.encode(alert), b"channel": final.channel.encode()}
        rejected = Rejected(entry_id, fields, reason)
        pipe.xadd(self.names.deadletter, deadletter_fields(self.names.alerts, GROUP, rejected))


def _count(record: DeliveryRecord) -> None:
    _counter(record.channel, record.channel_type, record.outcome).inc()


@lru_cache(maxsize=4096)
def _counter(channel: str, kind: str, outcome: str) -> Any:
    return metrics.DELIVERIES.labels(channel, kind, outcome)


def _context(alert: AlertEvent, record: DeliveryRecord) -> dict[str, object]:
    # Log extras: the JSON log format turns them into fields one can search on.
    return {
        "correlation_id": record.correlation_id,
        "event_id": alert.event_id,
        "tenant": alert.tenant,
        "channel": record.channel,
        "outcome": record.outcome,
        "duration_ms": round(record.latency_ms, 3),
    }
