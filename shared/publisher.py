"""Put events onto Vigil's streams from any Python service.

``Publisher`` buffers messages locally (bounded) and writes them in pipelined
``XADD`` batches from a background task, so instrumented code never waits on
Redis and a Redis outage delays events instead of losing them (until the buffer
is full: then the oldest are dropped and counted in ``dropped``).

    async with Publisher.connect("redis://127.0.0.1:6379/0") as vigil:
        vigil.metric("acme", "checkout", "orders_per_hour", 42.0, {"region": "eu"})
        vigil.error("acme", "checkout", "checkout-api", "DatabaseError", "pool exhausted")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import ApplicationError, Message, MetricSample
from shared import redisclient
from shared.landing import Landing
from shared.streams import StreamNames, encode

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        redis: Redis,
        prefix: str = "vigil",
        *,
        max_buffer: int = 100_000,
        flush_every: float = 0.05,
        batch: int = 500,
    ) -> None:
        self.redis, self.names = redis, StreamNames(prefix)
        self.max_buffer, self.flush_every, self.batch = max_buffer, flush_every, batch
        self.buffer: deque[tuple[str, Message]] = deque()
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._owns_redis = False
        # Each batch's size and the drop count then (see ``flush``).
        self.landing: Landing[tuple[int, int]] = Landing(self.names.key("publisher:landed"))

    @classmethod
    def connect(cls, redis_url: str, prefix: str = "vigil", **options: float) -> Publisher:
        publisher = cls(redisclient.connect(redis_url), prefix, **options)  # type: ignore[arg-type]
        publisher._owns_redis = True
        return publisher

    def publish(self, stream: str, message: Message) -> None:
        """Queue one message; safe to call from any thread and from sync code."""
        self.buffer.append((stream, message))
        if len(self.buffer) > self.max_buffer:
            self.buffer.popleft()
            self.dropped += 1

    def metric(
        self,
        tenant: str,
        service: str,
        metric: str,
        value: float,
        labels: dict[str, str] | None = None,
        observed_at: datetime | None = None,
    ) -> None:
        self.publish(
            self.names.metrics,
            MetricSample(
                tenant=tenant,
                service=service,
                metric=metric,
                value=float(value),
                labels=labels or {},
                observed_at=observed_at or datetime.now(UTC),
            ),
        )

    def error(
        self,
        tenant: str,
        service: str,
        source: str,
        error_type: str,
        message: str,
        *,
        stack_trace: str = "",
        endpoint: str = "",
        affected_users: int = 0,
        error_count: int = 1,
        observed_at: datetime | None = None,
    ) -> None:
        """Queue one application error; the evaluator turns it into an alert of category
        ``application``, deduplicated by ``error_type`` + ``source``."""
        self.publish(
            self.names.errors,
            ApplicationError(
                tenant=tenant,
                service=service,
                source=source,
                error_type=error_type,
                message=message,
                stack_trace=stack_trace,
                endpoint=endpoint,
                affected_users=affected_users,
                error_count=error_count,
                observed_at=observed_at or datetime.now(UTC),
            ),
        )

    async def flush(self) -> int:
        """Write what is buffered, a batch at a time; keep it on failure. Returns the count."""
        sent = 0
        if self.landing.unsure:
            try:
                landed = await self.landing.landed(self.redis)
            except RedisError:
                return sent
            if landed is not None:  # it ran though its reply was lost: do not resend it
                sent += self._sent(*landed)
        while self.buffer:
            batch = list(itertools.islice(self.buffer, self.batch))
            dropped_before = self.dropped
            # MULTI: a batch lands whole or not at all; ``landing`` covers a lost reply.
            pipe = self.redis.pipeline(transaction=True)
            for stream, message in batch:
                pipe.xadd(stream, encode(message))
            self.landing.mark(pipe, (len(batch), dropped_before))
            try:
                await pipe.execute()
            except RedisError as exc:
                log.warning("publishing %d events failed (%s); will retry", len(batch), exc)
                self.landing.failed()
                return sent
            sent += self._sent(len(batch), dropped_before)
        return sent

    def _sent(self, count: int, dropped_before: int) -> int:
        # Events dropped while we waited (buffer full) were the oldest: part of this
        # batch, already gone from the buffer. Pop only what is still there.
        for _ in range(max(0, count - (self.dropped - dropped_before))):
            self.buffer.popleft()
        return count

    async def _flush_until_closed(self) -> None:
        while not self._closing.is_set():
            await self.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.flush_every)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._flush_until_closed())
        return self

    async def __aexit__(
        self,
        *_: type[BaseException] | BaseException | TracebackType | None,
    ) -> None:
        # Let a flush under way finish rather than cancel it between XADD and bookkeeping,
        # which would publish its batch twice.
        self._closing.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._owns_redis:
            await self.redis.aclose()
