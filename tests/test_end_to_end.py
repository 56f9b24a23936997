"""The whole pipeline: probe -> evaluator -> notifier -> archiver, on real servers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path

import msgspec
import psycopg
from redis.asyncio import Redis

from schemas import AlertEvent
from services.evaluator.rules import ConsecutiveRule
from services.notifier.channels.webhook import WebhookConfig
from services.probe.monitors.http import HttpCheck
from shared.config import Config, Route, Tenant
from shared.configbase import Seconds
from shared.runner import ROLES, run
from shared.settings import Settings
from shared.streams import StreamNames
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.http import HttpStub
from tests.support.wait import wait_until

pytestmark = ON_SINGLE_AND_CLUSTER


def pipeline_config(target: str, receiver: str) -> Config:
    return Config(
        tenants=[Tenant(id="acme")],
        checks=[
            HttpCheck(
                name="web",
                tenant="acme",
                service="shop",
                tier="critical",
                url=target + "/health",
                interval=Seconds(0.1),
                timeout=Seconds(1),
            )
        ],
        rules=[ConsecutiveRule(name="down", failures=3, successes=2)],
        channels=[WebhookConfig(name="ops", url=receiver + "/hook", backoff=Seconds(0.05))],
        routes=[Route(channels=["ops"])],
    )


def count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


async def test_target_down_fires_then_resolves_and_everything_is_archived(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    settings = dataclasses.replace(settings, database_url=database_url)
    with HttpStub(status=200) as target, HttpStub(status=200) as receiver:
        stop = asyncio.Event()
        pipeline = asyncio.create_task(
            run(settings, pipeline_config(target.url, receiver.url), ROLES, stop)
        )
        try:

            def alerts() -> list[AlertEvent]:
                return [
                    msgspec.json.decode(r.body, type=AlertEvent) for r in receiver.posts("/hook")
                ]

            await wait_until(lambda: len(target.requests) >= 3, what="healthy checks")
            target.status = 503
            await wait_until(lambda: len(alerts()) == 1, what="the firing alert")
            assert alerts()[0].state == "firing" and alerts()[0].service == "shop"
            target.status = 200
            await wait_until(lambda: len(alerts()) == 2, what="the resolved alert")
            firing, resolved = alerts()
            assert resolved.state == "resolved"
            assert resolved.fingerprint == firing.fingerprint

            # A malformed entry on the results stream is dead-lettered, not dropped.
            await redis.xadd(names.results, {"data": b'{"tenant": 1}'})

            async def dead_lettered() -> bool:
                return int(await redis.xlen(names.deadletter)) >= 2  # evaluator + archiver

            await wait_until(dead_lettered, what="dead letters")

            await wait_until(
                lambda: count(database_url, "select count(*) from deliveries") == 2,
                what="archived deliveries",
            )
            await wait_until(
                lambda: count(database_url, "select count(*) from alert_events") == 2,
                what="archived alert events",
            )
        finally:
            stop.set()
            await pipeline

    results = count(database_url, "select count(*) from check_results")
    unhealthy = count(database_url, "select count(*) from check_results where status = 'unhealthy'")
    assert results >= 6 and unhealthy >= 3
    assert (
        count(
            database_url,
            "select count(*) from deliveries where outcome = 'delivered'"
            " and channel = 'ops' and status_code = 200",
        )
        == 2
    )
    with psycopg.connect(database_url) as conn:
        states = conn.execute("select state from alert_events order by state").fetchall()
    assert states == [("firing",), ("resolved",)]
    # One id finds the whole story: result -> alert event -> its deliveries.
    with psycopg.connect(database_url) as conn:
        story = conn.execute(
            "select a.state, r.status, count(d.*) from alert_events a"
            " join check_results r on r.event_id = a.correlation_id"
            " join deliveries d on d.correlation_id = a.correlation_id"
            " group by a.state, r.status order by a.state"
        ).fetchall()
    assert story == [("firing", "unhealthy", 1), ("resolved", "healthy", 1)]
    # Every entry of every stream was acknowledged by every group.
    for stream in (names.results, names.alerts, names.deliveries):
        for group in await redis.xinfo_groups(stream):
            assert group["pending"] == 0, (stream, group["name"])


SEPARATE_CONFIG = """\
tenants: [{id: acme}]
checks:
  - {name: web, type: http, tenant: acme, service: shop, tier: critical,
     url: "${TARGET_URL}/health", interval: 100ms, timeout: 1s}
rules:
  - {name: down, type: consecutive, failures: 2, successes: 2}
channels:
  - {name: ops, type: webhook, url: "${RECEIVER_URL}/hook", backoff: 50ms}
routes:
  - channels: [ops]
"""


async def test_each_service_runs_alone_as_its_own_process(
    tmp_path: Path, redis_server_url: str, stream_prefix: str, database_url: str
) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(SEPARATE_CONFIG)
    with HttpStub(status=503) as target, HttpStub() as receiver:
        env = {
            **os.environ,
            "VIGIL_CONFIG": str(config),
            "VIGIL_REDIS_URL": redis_server_url,
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_STREAM_PREFIX": stream_prefix,
            "VIGIL_OPS_PORT": "0",
            "TARGET_URL": target.url,
            "RECEIVER_URL": receiver.url,
        }
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from shared.cli import main; main()", "run", role, env=env
            )
            for role in ROLES
        ]
        try:
            # Four interpreters start first: on a loaded machine that alone takes seconds.
            await wait_until(
                lambda: len(receiver.posts("/hook")) == 1, timeout=45, what="firing alert"
            )
            target.status = 200
            await wait_until(lambda: len(receiver.posts("/hook")) == 2, what="resolved alert")
            await wait_until(
                lambda: count(database_url, "select count(*) from deliveries") == 2,
                what="archived deliveries",
            )
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [await proc.wait() for proc in procs]
    states = [msgspec.json.decode(r.body, type=AlertEvent).state for r in receiver.posts()]
    assert states == ["firing", "resolved"]
    assert codes == [0, 0, 0, 0]  # each stopped cleanly on SIGTERM
