"""Routing, rate limits, crash-after-send, the dead-letter commands and test-notify."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
import redis as sync_redis
from redis.asyncio import Redis
from typer.testing import CliRunner

from schemas import AlertEvent, DeliveryRecord
from services.notifier.channels import RateLimit, SendContext
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.dlq import dead_alerts, redrive
from services.notifier.routing import Route, RouteMatch, channels_for, destinations
from services.notifier.service import GROUP, Notifier
from services.notifier.templates import Templates
from shared.cli import app
from shared.config import Config, parse_config
from shared.configbase import Seconds
from shared.consumer import BatchProcessor
from shared.errors import ConfigError
from shared.netguard import EgressPolicy, GuardedClient, guarded_session
from shared.streams import StreamNames, encode, ensure_group
from tests.support.http import HttpStub
from tests.support.wait import wait_until
from tests.test_channels import FIRING

FAST = {"backoff": Seconds(0.001)}


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[GuardedClient]:
    async with guarded_session(EgressPolicy()) as client:
        yield client


async def records(redis: Redis, names: StreamNames) -> list[DeliveryRecord]:
    return [
        msgspec.json.decode(f[b"data"], type=DeliveryRecord)
        for _, f in await redis.xrange(names.deliveries)
    ]


async def run_batch(redis: Redis, names: StreamNames, n: Notifier, *alerts: AlertEvent) -> None:
    await ensure_group(redis, names.alerts, GROUP)
    for alert in alerts:
        await redis.xadd(names.alerts, encode(alert))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.alerts: ">"})
    await BatchProcessor(redis, names, n.consumer(), 5)(
        [i for i, _ in entries], [f for _, f in entries]
    )


# ---- routing ----


def test_matchers_on_labels_category_and_fields() -> None:
    db = msgspec.structs.replace(FIRING, category="database", labels={"region": "eu-west"})
    routes = [
        Route(match=RouteMatch(matchers=["region=~eu-.*", "severity!=info"]), channels=["eu"]),
        Route(match=RouteMatch(category="database"), channels=["dba"], continue_=True),
        Route(match=RouteMatch(labels={"region": "us"}), channels=["us"]),
        Route(match=RouteMatch(matchers=["region!~eu-.*"]), channels=["not-eu"]),
        Route(channels=["rest"]),
    ]
    assert channels_for(routes, db) == ["eu"]
    us = msgspec.structs.replace(db, labels={"region": "us"})
    assert channels_for(routes, us) == ["dba", "us"]
    other = msgspec.structs.replace(FIRING, labels={"region": "ap"})
    assert channels_for(routes, other) == ["not-eu"]
    info = msgspec.structs.replace(db, severity="info", category="")
    assert channels_for(routes, info) == ["rest"]  # "eu" excluded by severity!=info


def test_first_route_that_chose_a_channel_gives_its_templates() -> None:
    t1, t2 = Templates(title="one"), Templates(title="two")
    routes = [
        Route(match=RouteMatch(tenant="acme"), channels=["a"], continue_=True, templates=t1),
        Route(channels=["a", "b"], templates=t2),
    ]
    assert destinations(routes, FIRING) == [("a", t1), ("b", t2)]


def test_route_config_keeps_old_keys_and_reports_bad_matchers() -> None:
    text = (
        "channels:\n  - {name: ops, type: webhook, url: http://x}\n"
        "routes:\n  - match: {severity: critical}\n    channels: [ops]\n"
        "  - match:\n      matchers: ['region=~(']\n    channels: [ops]\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "v.yaml", {})
    assert info.value.field.startswith("routes[1].match")
    assert "bad regex" in info.value.reason and info.value.line == 7
    good = parse_config(text.rsplit("  - match:\n", 1)[0], "v.yaml", {})
    assert good.routes[0].match.severity == "critical"


async def test_route_templates_reach_the_channel(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    from services.notifier.channels.slack import SlackConfig

    critical = Templates(
        title="{{ tenant }}/{{ service }}: {{ value|num }} > {{ threshold|num }}",
        text="{{ message }} | {{ recommendations|join('; ') }} | {{ runbook_url }} | "
        "{% for name, url in links.items() %}{{ name }}={{ url }}{% endfor %}",
    )
    with HttpStub() as stub:
        config = Config(
            channels=[
                SlackConfig(name="a", url=stub.url + "/a"),
                SlackConfig(name="b", url=stub.url + "/b"),
            ],
            routes=[
                Route(
                    match=RouteMatch(severity="critical"),
                    channels=["a"],
                    templates=critical,
                    continue_=True,
                ),
                Route(channels=["a", "b"], templates=Templates(title="B: {{ title }}")),
            ],
        )
        await run_batch(redis, names, Notifier(config, redis, names, SendContext(http)), FIRING)
    [a] = [msgspec.json.decode(r.body)["attachments"][0] for r in stub.posts("/a")]
    [b] = [msgspec.json.decode(r.body)["attachments"][0] for r in stub.posts("/b")]
    # Channel a: the first route that chose it gives its templates, with every field.
    assert (a["title"], a["text"]) == (
        "acme/shop: 3 > 3",
        "3 unhealthy results in a row | restart the shop | https://runbooks.example/shop"
        " | Dashboard=https://dash.example/shop",
    )
    assert b["title"] == "B: shop is down"  # its own route's title, the default text
    assert b["text"].startswith("3 unhealthy results in a row\nValue: 3 (threshold 3)")


async def test_rate_limit_queues_instead_of_dropping(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    limited = WebhookConfig(name="pd", url="", rate_limit=RateLimit(count=2, per=Seconds(0.5)))
    alerts = [msgspec.structs.replace(FIRING, event_id=f"e{i}") for i in range(6)]
    with HttpStub() as stub:
        limited = msgspec.structs.replace(limited, url=stub.url)
        config = Config(channels=[limited], routes=[Route(channels=["pd"])])
        started = time.monotonic()
        await run_batch(redis, names, Notifier(config, redis, names, SendContext(http)), *alerts)
        elapsed = time.monotonic() - started
    assert len(stub.posts()) == 6  # none dropped
    assert elapsed >= 0.9  # 6 sends at 2 per 0.5 s: the last waits about a second


async def test_rate_limit_holds_across_two_notifier_instances(
    redis: Redis, names: StreamNames, http: GuardedClient, redis_server_url: str
) -> None:
    per = 0.4
    limited = WebhookConfig(name="pd", url="", rate_limit=RateLimit(count=2, per=Seconds(per)))
    await ensure_group(redis, names.alerts, GROUP)
    for i in range(8):
        await redis.xadd(names.alerts, encode(msgspec.structs.replace(FIRING, event_id=f"e{i}")))
    with HttpStub() as stub:
        config = Config(
            channels=[msgspec.structs.replace(limited, url=stub.url)],
            routes=[Route(channels=["pd"])],
        )

        async def instance(consumer: str) -> None:
            # Its own Redis client and its own Notifier: nothing shared but the server.
            own = Redis.from_url(redis_server_url)
            try:
                n = Notifier(config, own, names, SendContext(http))
                [[_, entries]] = await own.xreadgroup(GROUP, consumer, {names.alerts: ">"}, 4)
                await BatchProcessor(own, names, n.consumer(), 5)(
                    [i for i, _ in entries], [f for _, f in entries]
                )
            finally:
                await own.aclose()

        await asyncio.gather(instance("a"), instance("b"))
    arrivals = sorted(r.at for r in stub.posts())
    assert len(arrivals) == 8  # none dropped
    # At most 2 per 0.4 s in total (a per-process limit would let 4 through at once);
    # 0.1 s of slack for the time between a reserved slot and the request's arrival.
    pairs = zip(arrivals, arrivals[2:], strict=False)  # each send and the one two later
    assert all(later - first >= per - 0.1 for first, later in pairs)
    assert arrivals[-1] - arrivals[0] >= 3 * per - 0.1


# ---- crash after send ----


async def test_crash_after_send_then_reclaim_sends_no_duplicate(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub() as stub:
        config = Config(
            channels=[WebhookConfig(name="ops", url=stub.url)], routes=[Route(channels=["ops"])]
        )
        n = Notifier(config, redis, names, SendContext(http))
        await ensure_group(redis, names.alerts, GROUP)
        await redis.xadd(names.alerts, encode(FIRING))
        [[_, entries]] = await redis.xreadgroup(GROUP, "w1", {names.alerts: ">"})
        # Worker 1 sends, then dies: its transaction (records + XACK) never runs.
        await n.handle([(i, FIRING) for i, _ in entries], redis.pipeline(transaction=True))
        assert len(stub.posts()) == 1
        # Worker 2 reclaims the pending entry and runs it through the real adapter.
        _, claimed, _ = await redis.xautoclaim(names.alerts, GROUP, "w2", 0)
        await BatchProcessor(redis, names, n.consumer(), 5)(
            [i for i, _ in claimed], [f for _, f in claimed], reclaimed=True
        )
    assert len(stub.posts()) == 1
    assert (await redis.xpending(names.alerts, GROUP))["pending"] == 0
    assert [(r.outcome, r.error) for r in await records(redis, names)] == [
        ("skipped", "already delivered")
    ]


async def test_crash_while_a_slow_retry_holds_the_batch_repeats_no_finished_send(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub() as fast, HttpStub(script=[503]) as slow:
        config = Config(
            channels=[
                WebhookConfig(name="fast", url=fast.url),
                # The first answer is 503, then a long back-off keeps the batch open.
                WebhookConfig(name="slow", url=slow.url, max_attempts=2, backoff=Seconds(30)),
            ],
            routes=[Route(channels=["fast", "slow"])],
        )
        n = Notifier(config, redis, names, SendContext(http))
        await ensure_group(redis, names.alerts, GROUP)
        await redis.xadd(names.alerts, encode(FIRING))
        [[_, entries]] = await redis.xreadgroup(GROUP, "w1", {names.alerts: ">"})
        fast_key = n.sent.key(FIRING.event_id, "fast")

        async def fast_marked() -> bool:
            return bool(len(slow.posts()) == 1 and await redis.get(fast_key) == b"sent")

        async with asyncio.TaskGroup() as tasks:
            worker = tasks.create_task(
                n.handle([(i, FIRING) for i, _ in entries], redis.pipeline(transaction=True))
            )
            await wait_until(fast_marked, timeout=5, what="the fast send marked while slow waits")
            worker.cancel()  # worker 1 dies mid-batch: no records, no XACK
        _, claimed, _ = await redis.xautoclaim(names.alerts, GROUP, "w2", 0)
        await BatchProcessor(
            redis, names, Notifier(config, redis, names, SendContext(http)).consumer(), 5
        )([i for i, _ in claimed], [f for _, f in claimed], reclaimed=True)
    assert len(fast.posts()) == 1  # finished before the crash: not repeated
    assert len(slow.posts()) == 2  # unfinished: tried again by worker 2, and delivered
    assert sorted((r.channel, r.outcome) for r in await records(redis, names)) == [
        ("fast", "skipped"),
        ("slow", "delivered"),
    ]


# ---- dead letters ----


async def test_dead_alerts_are_listed_and_redriven_to_the_failed_channel_only(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub() as good, HttpStub(status=500) as bad:
        config = Config(
            channels=[
                WebhookConfig(name="good", url=good.url, **FAST),
                WebhookConfig(name="bad", url=bad.url, max_attempts=2, **FAST),
            ],
            routes=[Route(channels=["good", "bad"])],
        )
        n = Notifier(config, redis, names, SendContext(http))
        await run_batch(redis, names, n, FIRING)
        [dead] = await dead_alerts(redis, names)
        assert dead.channel == "bad" and "HTTP 500" in dead.reason
        assert msgspec.json.decode(dead.data, type=AlertEvent) == FIRING
        bad.status = 200
        assert await redrive(redis, names) == [dead.id]
        assert await dead_alerts(redis, names) == []
        [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.alerts: ">"})
        await BatchProcessor(redis, names, n.consumer(), 5)(
            [i for i, _ in entries], [f for _, f in entries]
        )
    assert (len(good.posts()), len(bad.posts())) == (1, 3)
    assert await redis.xlen(names.deadletter) == 0


def test_dlq_commands(redis_server_url: str, stream_prefix: str) -> None:
    names = StreamNames(stream_prefix)
    client = sync_redis.Redis.from_url(redis_server_url)
    for channel in ("a", "b"):
        client.xadd(
            names.deadletter,
            {
                "data": msgspec.json.encode(FIRING),
                "channel": channel,
                "dlq:stream": names.alerts,
                "dlq:reason": f"delivery to {channel} failed",
                "dlq:at_ms": "1790000000000",
            },
        )
    env = {"VIGIL_REDIS_URL": redis_server_url, "VIGIL_STREAM_PREFIX": stream_prefix}
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list"], env=env)
    lines = listed.output.splitlines()
    assert [line.split()[2] for line in lines] == ["a", "b"]
    first_id = lines[0].split()[0]
    retried = runner.invoke(app, ["dlq", "retry", first_id], env=env)
    assert retried.output.strip() == "re-drove 1 alert event(s)"
    assert client.xlen(names.alerts) == 1 and client.xlen(names.deadletter) == 1
    assert runner.invoke(app, ["dlq", "retry", "--all"], env=env).exit_code == 0
    assert client.xlen(names.alerts) == 2 and client.xlen(names.deadletter) == 0
    client.close()


def test_test_notify_sends_through_the_real_path(
    redis_server_url: str, stream_prefix: str, tmp_path: Path
) -> None:
    with HttpStub() as stub:
        config = tmp_path / "vigil.yaml"
        config.write_text(f"channels:\n  - {{name: ops, type: webhook, url: '{stub.url}/t'}}\n")
        env = {
            "VIGIL_REDIS_URL": redis_server_url,
            "VIGIL_STREAM_PREFIX": stream_prefix,
            "VIGIL_CONFIG": str(config),
        }
        result = CliRunner().invoke(app, ["test-notify", "ops"], env=env)
        unknown = CliRunner().invoke(app, ["test-notify", "nope"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("attempt 1: delivered 200")
    [request] = stub.posts("/t")
    alert = msgspec.json.decode(request.body, type=AlertEvent)
    assert (alert.title, alert.source) == ("Test notification from Vigil", "test-notify")
    assert "unknown channel 'nope'" in str(unknown.exception)
    client = sync_redis.Redis.from_url(redis_server_url)
    assert client.xlen(StreamNames(stream_prefix).deliveries) == 1
    client.close()


# ---- grouping ----


async def test_two_hundred_failing_checks_make_one_message(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    route = Route(
        channels=["ops"],
        group_by=["tenant"],
        group_wait=Seconds(30),
        group_interval=Seconds(300),
        repeat_interval=Seconds(3600),
    )
    down = [
        msgspec.structs.replace(FIRING, fingerprint=f"fp{i}", service=f"svc{i}", event_id=f"f{i}")
        for i in range(200)
    ]
    other = msgspec.structs.replace(FIRING, tenant="globex", fingerprint="g", event_id="g1")
    with HttpStub() as stub:
        config = Config(channels=[WebhookConfig(name="ops", url=stub.url)], routes=[route])
        n = Notifier(config, redis, names, SendContext(http))
        t0 = time.time()
        await run_batch(redis, names, n, *down, other)
        assert await n.flush_groups(t0 + 1) == 0  # still in group_wait
        assert await n.flush_groups(t0 + 31) == 2  # one per tenant
        assert await n.flush_groups(t0 + 32) == 0  # nothing new
        sent = [msgspec.json.decode(r.body, type=AlertEvent) for r in stub.posts()]
        assert sorted(a.title for a in sent) == [
            "1 firing: tenant=globex",
            "200 firing: tenant=acme",
        ]
        acme = next(a for a in sent if a.tenant == "acme")
        assert acme.message.count("\n") == 50  # 50 alerts listed, then "... and 150 more"
        assert acme.message.endswith("... and 150 more")

        resolved = [
            msgspec.structs.replace(a, state="resolved", ended_at=a.started_at, event_id=f"r{i}")
            for i, a in enumerate(down[:3])
        ]
        await run_batch(redis, names, n, *resolved)
        assert await n.flush_groups(t0 + 100) == 0  # waits for group_interval
        assert await n.flush_groups(t0 + 332) == 1
        assert await n.flush_groups(t0 + 1000) == 0  # unchanged, before repeat_interval
        assert await n.flush_groups(t0 + 3700) == 1  # globex: an hour since its message
        assert await n.flush_groups(t0 + 4000) == 1  # acme: an hour since its last one
        titles = [msgspec.json.decode(r.body, type=AlertEvent).title for r in stub.posts()[2:]]
    assert titles[0] == "197 firing, 3 resolved: tenant=acme"
    assert titles[1:] == ["1 firing: tenant=globex", "197 firing: tenant=acme"]


async def test_the_same_event_twice_in_one_batch_is_sent_once(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub() as stub:
        config = Config(
            channels=[WebhookConfig(name="ops", url=stub.url)], routes=[Route(channels=["ops"])]
        )
        await run_batch(
            redis, names, Notifier(config, redis, names, SendContext(http)), FIRING, FIRING
        )
    assert len(stub.posts()) == 1
    assert (await redis.xpending(names.alerts, GROUP))["pending"] == 0


async def test_a_slow_batch_is_not_reclaimed_while_its_worker_lives(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub(delay=1.2) as slow:
        config = Config(
            channels=[WebhookConfig(name="slow", url=slow.url)], routes=[Route(channels=["slow"])]
        )
        n = Notifier(config, redis, names, SendContext(http))
        await ensure_group(redis, names.alerts, GROUP)
        await redis.xadd(names.alerts, encode(FIRING))
        [[_, entries]] = await redis.xreadgroup(GROUP, "w1", {names.alerts: ">"})
        taken: list[bytes] = []

        async def reclaimer() -> None:
            # Another worker's reclaimer, with a short idle time, while w1 still sends.
            await wait_until(lambda: bool(slow.posts()), timeout=5, what="w1 sending")
            for _ in range(10):  # a reclaim pass every 0.1 s for a second
                await asyncio.sleep(0.1)
                _, claimed, _ = await redis.xautoclaim(names.alerts, GROUP, "w2", 300)
                taken.extend(i for i, _ in claimed)

        process = BatchProcessor(redis, names, n.consumer(), 5, holder=("w1", 0.1))
        await asyncio.gather(process([i for i, _ in entries], [f for _, f in entries]), reclaimer())
    assert taken == []  # w1 kept its entry fresh: nobody else picked it up
    assert len(slow.posts()) == 1
    assert (await redis.xpending(names.alerts, GROUP))["pending"] == 0
