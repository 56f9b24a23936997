"""Deliver one alert event to one channel: retries with back-off, a record per attempt."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from jinja2 import TemplateError

from schemas import AlertEvent, DeliveryRecord
from services.notifier.channels import CHANNELS, AnyChannelConfig, SendContext
from services.notifier.ratelimit import Limiters
from services.notifier.templates import Notification, Templates
from shared.errors import ChannelError

BACKOFF_CAP_S = 30.0


def backoff(base: float, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential back-off with jitter (x0.5 to x1.5), in seconds, after ``attempt``."""
    return float(min(BACKOFF_CAP_S, base * 2 ** (attempt - 1)) * (0.5 + rand()))


def pause(base: float, attempt: int, error: ChannelError) -> float:
    """The wait before the next attempt: the back-off, or longer if the receiver asked
    for it (429/503 ``Retry-After``), never past ``BACKOFF_CAP_S``: a receiver cannot
    park an alert for an hour."""
    wait = backoff(base, attempt)
    if error.retry_after is not None:
        wait = max(wait, min(error.retry_after, BACKOFF_CAP_S))
    return wait


def correlation(alert: AlertEvent) -> str:
    """The id that ties an alert's deliveries to what caused it; an alert raised by time
    alone (or from outside) has no cause, and its own id stands in."""
    return alert.correlation_id or alert.event_id


def _record(
    alert: AlertEvent, config: AnyChannelConfig, attempt: int, outcome: str, **kw: object
) -> DeliveryRecord:
    return DeliveryRecord(
        alert_event_id=alert.event_id,
        fingerprint=alert.fingerprint,
        tenant=alert.tenant,
        channel=config.name,
        channel_type=config.kind,
        target=config.target(),
        attempt=attempt,
        outcome=outcome,  # type: ignore[arg-type]
        at=datetime.now(UTC),
        correlation_id=correlation(alert),
        **kw,  # type: ignore[arg-type]
    )


async def deliver(
    alert: AlertEvent,
    config: AnyChannelConfig,
    ctx: SendContext,
    templates: Templates | None = None,
    limiters: Limiters | None = None,
    test: bool = False,
    gate: asyncio.Semaphore | None = None,
) -> list[DeliveryRecord]:
    """Try until delivered, a permanent error, or ``max_attempts``; one record per attempt."""
    channel = CHANNELS[config.kind]
    note = Notification(alert, templates, test)
    records: list[DeliveryRecord] = []
    for attempt in range(1, config.max_attempts + 1):
        if limiters is not None:
            await limiters.acquire(config)
        started = time.perf_counter()
        code: int | None = None
        error: ChannelError | None = None
        try:
            if gate is None:
                code = await channel.send(note, config, ctx)
            else:
                async with gate:  # waiting here does not count against the timeout
                    started = time.perf_counter()
                    code = await channel.send(note, config, ctx)
        except ChannelError as exc:
            error = exc
        except TemplateError as exc:  # rendered on first use, inside the channel
            error = ChannelError(f"template: {exc}", permanent=True)
        except Exception as exc:  # a channel bug must not stop the others
            error = ChannelError(f"{type(exc).__name__}", permanent=True)
        last = error is None or error.permanent or attempt == config.max_attempts
        records.append(
            _record(
                alert,
                config,
                attempt,
                "delivered" if error is None else ("failed" if last else "retrying"),
                status_code=error.status_code if error else code,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error.reason if error else "",
            )
        )
        if last or error is None:  # error is None only when last: for the type checker
            return records
        await asyncio.sleep(pause(config.backoff, attempt, error))
    return records
