"""Per-service metrics and the correlation id, on a running pipeline with real servers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult, DeliveryRecord
from services.evaluator.rules import ConsecutiveRule
from services.notifier.channels.webhook import WebhookConfig
from services.probe.monitors.http import HttpCheck
from shared.config import Config, Route, Tenant
from shared.configbase import Seconds
from shared.localservers import free_port
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames
from tests.support.http import HttpStub
from tests.support.wait import wait_until


def config(target: str, receiver: str, tier: str, channel: str) -> Config:
    return Config(
        tenants=[Tenant(id="acme")],
        tiers={tier: Seconds(1)},
        checks=[
            HttpCheck(
                name="web",
                tenant="acme",
                service="shop",
                tier=tier,
                url=target + "/health",
                interval=Seconds(0.1),
                timeout=Seconds(1),
            )
        ],
        rules=[ConsecutiveRule(name="down", failures=2, successes=2)],
        channels=[WebhookConfig(name=channel, url=receiver + "/hook", backoff=Seconds(0.05))],
        routes=[Route(channels=[channel])],
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def decoded(redis: Redis, stream: str, kind: type[msgspec.Struct]) -> list[msgspec.Struct]:
    return [msgspec.json.decode(f[b"data"], type=kind) for _, f in await redis.xrange(stream)]


async def test_metrics_and_correlation_follow_a_real_outage(
    redis: Redis, settings: Settings, names: StreamNames, caplog: pytest.LogCaptureFixture
) -> None:
    # Labels unique to this test: the metrics registry is per process.
    tier, channel = f"t{uuid.uuid4().hex[:8]}", f"ops{uuid.uuid4().hex[:8]}"
    port = free_port()
    settings = dataclasses.replace(settings, ops_port=port)
    caplog.set_level(logging.INFO, logger="services.notifier.service")
    with HttpStub(status=503) as target, HttpStub(status=200) as receiver:
        stop = asyncio.Event()
        roles = ["probe", "evaluator", "notifier"]
        task = asyncio.create_task(
            run(settings, config(target.url, receiver.url, tier, channel), roles, stop)
        )
        try:
            await wait_until(lambda: len(receiver.posts("/hook")) == 1, what="firing alert")
            target.status = 200
            await wait_until(lambda: len(receiver.posts("/hook")) == 2, what="resolved alert")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def counted() -> bool:
                    got = samples((await http.get("/metrics")).text)
                    labels = {"channel": channel, "channel_type": "webhook", "outcome": "delivered"}
                    key = frozenset(labels.items())
                    return got.get(("vigil_deliveries_total", key)) == 2.0

                await wait_until(counted, what="delivery metric")
                got = samples((await http.get("/metrics")).text)
        finally:
            stop.set()
            await task

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    assert value("vigil_probe_results_total", tier=tier, status="unhealthy") >= 2
    assert value("vigil_probe_results_total", tier=tier, status="healthy") >= 2
    assert value("vigil_alert_events_total", state="firing") >= 1
    assert value("vigil_alert_events_total", state="resolved") >= 1

    # One id finds the whole story: check result -> alert -> every delivery.
    results = {r.event_id: r for r in await decoded(redis, names.results, CheckResult)}  # type: ignore[attr-defined]
    alerts = await decoded(redis, names.alerts, AlertEvent)
    deliveries = await decoded(redis, names.deliveries, DeliveryRecord)
    assert [a.state for a in alerts] == ["firing", "resolved"]  # type: ignore[attr-defined]
    for alert in alerts:
        assert isinstance(alert, AlertEvent)
        cause = results[alert.correlation_id]
        assert cause.status == ("unhealthy" if alert.state == "firing" else "healthy")
        mine = [d for d in deliveries if isinstance(d, DeliveryRecord)]
        [delivery] = [d for d in mine if d.alert_event_id == alert.event_id]
        assert delivery.correlation_id == alert.correlation_id
        posted = [msgspec.json.decode(r.body, type=AlertEvent) for r in receiver.posts("/hook")]
        assert alert.correlation_id in {p.correlation_id for p in posted}
        logged = [
            r for r in caplog.records if getattr(r, "correlation_id", None) == alert.correlation_id
        ]
        assert logged and logged[0].outcome == "delivered"  # type: ignore[attr-defined]
