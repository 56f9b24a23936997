"""Vigil watches itself: the default pack's self-watch rules fire from Vigil's own
/metrics (scraped by a prometheus check) and link their runbooks."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from schemas import AlertEvent
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.routing import RouteMatch
from services.probe.monitors.prometheus import PrometheusCheck
from shared.config import Config, Route, Tenant, load_config
from shared.configbase import Seconds
from shared.localservers import free_port
from shared.publisher import Publisher
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames
from tests.support.http import HttpStub
from tests.support.wait import wait_until
from tests.test_config import DEMO_ENV

REPO = Path(__file__).resolve().parents[1]
BASE = "https://runbooks.example/vigil"


def selfwatch_config(ops_port: int, bad: str, good: str) -> Config:
    return Config(
        tenants=[Tenant(id="acme")],
        tiers={"core": Seconds(0.2)},
        checks=[
            PrometheusCheck(
                name="vigil-metrics",
                tenant="acme",
                service="vigil",
                tier="core",
                url=f"http://127.0.0.1:{ops_port}/metrics",
                include=["vigil_deliveries_total", "vigil_dead_letters_total"],
                labels={"instance": "all-in-one"},
            )
        ],
        default_rules=True,
        runbook_base_url=BASE,
        channels=[
            WebhookConfig(name="broken", url=bad + "/hook", backoff=Seconds(0.01)),
            WebhookConfig(name="oncall", url=good + "/hook", backoff=Seconds(0.01)),
        ],
        routes=[
            Route(match=RouteMatch(rule="vigil_delivery_failures"), channels=["oncall"]),
            Route(channels=["broken"]),
        ],
    )


async def test_a_failing_channel_raises_vigil_delivery_failures(
    redis: Redis, settings: Settings, stream_prefix: str, names: StreamNames
) -> None:
    port = free_port()
    settings = dataclasses.replace(settings, ops_port=port)
    # 400: a permanent failure, so the delivery fails at once.
    with HttpStub(status=400) as bad, HttpStub(status=200) as good:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run(
                settings,
                selfwatch_config(port, bad.url, good.url),
                ["probe", "evaluator", "notifier"],
                stop,
            )
        )
        try:
            # A rate needs the counter's 0 before the failure: wait for a first scrape.
            async def scraped() -> bool:
                return bool(await redis.xlen(names.metrics))

            await wait_until(scraped, what="a first scrape of /metrics")
            publisher = Publisher(redis, stream_prefix)
            publisher.error("acme", "checkout", "checkout-api", "DatabaseError", "pool exhausted")
            await publisher.flush()
            await wait_until(lambda: len(bad.posts("/hook")) >= 1, what="the failed delivery")
            await wait_until(lambda: len(good.posts("/hook")) >= 1, what="the self-watch alert")
        finally:
            stop.set()
            await task
    alert = msgspec.json.decode(good.posts("/hook")[0].body, type=AlertEvent)
    assert (alert.rule, alert.state, alert.service) == (
        "vigil_delivery_failures",
        "firing",
        "vigil",
    )
    assert alert.labels == {"channel": "broken", "instance": "all-in-one"}
    assert alert.runbook_url == f"{BASE}/docs/runbooks/delivery-failures.md"


def test_every_default_rule_links_an_existing_runbook_section() -> None:
    for rule in Config(default_rules=True).all_rules:
        path, _, anchor = rule.runbook_url.partition("#")
        assert path.startswith("docs/runbooks/"), rule.name
        text = (REPO / path).read_text()
        if anchor:
            assert re.search(rf"^#+ `?{re.escape(anchor)}`?$", text, re.M), (rule.name, anchor)


def test_the_demo_config_watches_vigil_itself() -> None:
    config = load_config(REPO / "deploy" / "demo" / "vigil.yaml", DEMO_ENV)
    kinds = {c.name: c.kind for c in config.checks if c.service == "vigil"}
    assert kinds["vigil-metrics"] == "prometheus"
    assert sum(k == "stream_lag" for k in kinds.values()) == 3
    rules = {r.name: r for r in config.all_rules}
    for name in ("vigil_stream_backlog", "vigil_dead_letters", "vigil_delivery_failures"):
        assert (REPO / rules[name].runbook_url).exists()


def test_the_example_config_enables_the_self_watch_pack() -> None:
    config = load_config(REPO / "deploy" / "docker" / "vigil.yaml", {})
    names = {r.name for r in config.all_rules}
    assert {"vigil_stream_backlog", "vigil_delivery_failures", "vigil_probe_silent"} <= names
    scrapes = [c for c in config.checks if c.kind == "prometheus"]
    # One series per scraped process: every scrape has its own instance label.
    instances = [c.labels["instance"] for c in scrapes]  # type: ignore[union-attr]
    assert len(instances) == len(set(instances)) == 4


def test_the_kubernetes_config_watches_the_consumer_groups(tmp_path: Path) -> None:
    from tests.test_deploy import kubernetes_docs

    [config_map] = [d for d in kubernetes_docs() if d["kind"] == "ConfigMap"]
    path = tmp_path / "vigil.yaml"
    path.write_text(config_map["data"]["vigil.yaml"])  # type: ignore[index]
    config = load_config(path, {})
    lag = {(c.stream, c.group) for c in config.checks if c.kind == "stream_lag"}  # type: ignore[union-attr]
    assert {g for _, g in lag} == {"evaluator", "notifier", "archiver"}
    assert "vigil_stream_backlog" in {r.name for r in config.all_rules}
