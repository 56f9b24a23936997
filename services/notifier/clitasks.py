"""What the notifier's commands do, with settings and config read once here."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import AlertEvent, DeliveryRecord, new_event_id
from services.notifier.channels import SendContext
from services.notifier.delivery import deliver
from services.notifier.dlq import DeadAlert, dead_alerts, redrive
from services.notifier.ratelimit import Limiters
from shared import netguard
from shared.config import load_config
from shared.errors import VigilError
from shared.redisclient import connected
from shared.settings import Settings
from shared.streams import StreamNames, encode


def test_alert(now: datetime) -> AlertEvent:
    return AlertEvent(
        fingerprint=f"test-notify-{new_event_id()[:8]}",
        rule="test-notify",
        tenant="vigil",
        service="vigil",
        severity="info",
        state="firing",
        title="Test notification from Vigil",
        message="If you can read this, the channel works.",
        started_at=now,
        source="test-notify",
    )


async def send_test(channel: str, settings: Settings | None = None) -> list[DeliveryRecord]:
    """Deliver a test alert to ``channel``; records go to the deliveries stream too."""
    settings = settings or Settings.from_env()
    if settings.config_path is None:
        raise VigilError("VIGIL_CONFIG is not set: it names the YAML configuration")
    config = load_config(settings.config_path)
    if channel not in {c.name for c in config.channels}:
        known = ", ".join(c.name for c in config.channels) or "none"
        raise VigilError(f"unknown channel {channel!r}; configured: {known}")
    names = StreamNames(settings.stream_prefix)
    redis = await connected(settings.redis_url)
    try:
        async with netguard.guarded_session(config.egress) as http:
            ctx = SendContext(http, redis, names)
            records = await deliver(
                test_alert(datetime.now(UTC)),
                config.channel(channel),
                ctx,
                limiters=Limiters(redis, names),  # a test counts against the shared limit
                test=True,
            )
        pipe = redis.pipeline(transaction=False)
        for record in records:
            pipe.xadd(names.deliveries, encode(record))
        await pipe.execute()
        return records
    finally:
        await redis.aclose()


async def list_dead(limit: int, settings: Settings | None = None) -> list[DeadAlert]:
    settings = settings or Settings.from_env()
    redis = await connected(settings.redis_url)
    try:
        return await dead_alerts(redis, StreamNames(settings.stream_prefix), limit)
    finally:
        await redis.aclose()


async def retry_dead(ids: list[str] | None, settings: Settings | None = None) -> list[str]:
    settings = settings or Settings.from_env()
    redis = await connected(settings.redis_url)
    try:
        return await redrive(redis, StreamNames(settings.stream_prefix), ids)
    finally:
        await redis.aclose()
