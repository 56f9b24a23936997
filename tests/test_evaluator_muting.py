"""Muting end to end: the evaluator marks the event, the notifier does not send it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
from redis.asyncio import Redis

from schemas import AlertEvent, MetricSample
from services.evaluator.muting import Silence
from services.evaluator.rules import ThresholdRule
from services.notifier.channels.webhook import WebhookConfig
from shared.config import Config, Route, Tenant
from shared.configbase import Seconds
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.support.http import HttpStub
from tests.support.wait import wait_until


def disk(service: str) -> MetricSample:
    return MetricSample(
        tenant="acme", service=service, metric="disk", value=95.0, observed_at=datetime.now(UTC)
    )


async def test_silenced_alerts_are_recorded_but_not_sent(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    now = datetime.now(UTC)
    silence = Silence(
        id="migration",
        matchers={"service": "shop"},
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        created_by="ana",
        comment="disk migration",
    )
    with HttpStub(status=200) as receiver:
        config = Config(
            tenants=[Tenant(id="acme")],
            rules=[ThresholdRule(name="disk", source="disk", threshold=80)],
            silences=[silence],
            channels=[WebhookConfig(name="ops", url=receiver.url, backoff=Seconds(0.01))],
            routes=[Route(channels=["ops"])],
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, config, ["evaluator", "notifier"], stop))
        try:
            await redis.xadd(names.metrics, encode(disk("shop")))
            await redis.xadd(names.metrics, encode(disk("cart")))
            await wait_until(lambda: len(receiver.posts()) >= 1, what="the unsilenced alert")
        finally:
            stop.set()
            await task
        sent = [msgspec.json.decode(r.body, type=AlertEvent) for r in receiver.posts()]
    recorded = [
        msgspec.json.decode(f[b"data"], type=AlertEvent)
        for _, f in await redis.xrange(names.alerts)
    ]
    assert [(a.service, a.muted_by) for a in recorded] == [
        ("shop", "silence:migration"),
        ("cart", ""),
    ]
    assert [a.service for a in sent] == ["cart"]
