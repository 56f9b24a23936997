"""Deliver one alert event to one channel: retries with back-off, a record per attempt."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from schemas import AlertEvent, DeliveryRecord
from services.notifier.channels import CHANNELS, AnyChannelConfig, SendContext
from shared.errors import ChannelError

BACKOFF_CAP_S = 30.0


def backoff(base: float, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential back-off with jitter (x0.5 to x1.5), in seconds, after ``attempt``."""
    return float(min(BACKOFF_CAP_S, base * 2 ** (attempt - 1)) * (0.5 + rand()))


async def deliver(
    alert: AlertEvent, config: AnyChannelConfig, ctx: SendContext
) -> list[DeliveryRecord]:
    """Try until delivered, a permanent error, or ``max_attempts``; one record per attempt."""
    channel = CHANNELS[config.kind]
    records: list[DeliveryRecord] = []
    for attempt in range(1, config.max_attempts + 1):
        started = time.perf_counter()
        code: int | None = None
        error: ChannelError | None = None
        try:
            code = await channel.send(alert, config, ctx)
        except ChannelError as exc:
            error = exc
        except Exception as exc:  # a channel bug must not stop the others
            error = ChannelError(f"{type(exc).__name__}: {exc}", permanent=True)
        last = error is None or error.permanent or attempt == config.max_attempts
        records.append(
            DeliveryRecord(
                alert_event_id=alert.event_id,
                fingerprint=alert.fingerprint,
                tenant=alert.tenant,
                channel=config.name,
                channel_type=channel.type,
                attempt=attempt,
                outcome="delivered" if error is None else ("failed" if last else "retrying"),
                status_code=error.status_code if error else code,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error.reason if error else "",
                at=datetime.now(UTC),
            )
        )
        if last:
            return records
        await asyncio.sleep(backoff(config.backoff, attempt))
    return records
