"""The notifier against real local HTTP receivers and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas import AlertEvent, DeliveryRecord
from services.notifier.channels import SendContext
from services.notifier.channels.console import ConsoleConfig
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.delivery import backoff
from services.notifier.routing import channels_for
from services.notifier.sent import SentRecords
from services.notifier.service import GROUP, Notifier
from shared.config import Config, Route, RouteMatch
from shared.configbase import Seconds
from shared.consumer import BatchProcessor
from shared.netguard import EgressPolicy, GuardedClient, guarded_session
from shared.streams import StreamNames, encode, ensure_group
from tests.support.http import HttpStub

ALERT = AlertEvent(
    fingerprint="fp1",
    rule="down",
    tenant="acme",
    service="shop",
    severity="critical",
    state="firing",
    title="shop is down",
    message="3 unhealthy results in a row",
    value=3.0,
    threshold=3.0,
    started_at=datetime(2026, 11, 24, 12, tzinfo=UTC),
    event_id="ev1",
)


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[GuardedClient]:
    async with guarded_session(EgressPolicy()) as client:
        yield client


def notifier(
    redis: Redis, names: StreamNames, http: GuardedClient, *hooks: WebhookConfig
) -> Notifier:
    config = Config(
        channels=[*hooks, ConsoleConfig(name="console", color=False)],
        routes=[Route(channels=[h.name for h in hooks] + ["console"])],
    )
    return Notifier(config, redis, names, SendContext(http))


def hook(url: str, name: str = "ops", attempts: int = 3) -> WebhookConfig:
    return WebhookConfig(
        name=name,
        url=url,
        max_attempts=attempts,
        backoff=Seconds(0.01),
        headers={"authorization": "Bearer t0k3n"},
    )


async def process(redis: Redis, names: StreamNames, n: Notifier) -> None:
    """Publish ALERT and run one batch through the real adapter."""
    await ensure_group(redis, names.alerts, GROUP)
    await redis.xadd(names.alerts, encode(ALERT))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.alerts: ">"})
    await BatchProcessor(redis, names, n.consumer(), 5)(
        [i for i, _ in entries], [f for _, f in entries]
    )


async def records(redis: Redis, names: StreamNames) -> list[DeliveryRecord]:
    return [
        msgspec.json.decode(f[b"data"], type=DeliveryRecord)
        for _, f in await redis.xrange(names.deliveries)
    ]


async def test_webhook_receives_the_alert_event_as_json(
    redis: Redis,
    names: StreamNames,
    http: GuardedClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with HttpStub(status=204) as stub:
        await process(redis, names, notifier(redis, names, http, hook(stub.url + "/in")))
    [request] = stub.posts("/in")
    assert msgspec.json.decode(request.body, type=AlertEvent) == ALERT
    assert request.headers["x-vigil-event-id"] == "ev1"
    assert request.headers["authorization"] == "Bearer t0k3n"
    assert request.headers["content-type"] == "application/json"
    assert "FIRING   [critical] acme/shop: shop is down" in capsys.readouterr().out
    outcomes = {(r.channel, r.outcome, r.status_code) for r in await records(redis, names)}
    assert outcomes == {("ops", "delivered", 204), ("console", "delivered", None)}
    targets = {r.channel: r.target for r in await records(redis, names)}
    assert targets == {"ops": stub.url.removeprefix("http://"), "console": ""}


async def test_retryable_failures_are_retried_then_delivered(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub(script=[503, 429], status=200) as stub:
        await process(redis, names, notifier(redis, names, http, hook(stub.url)))
    assert len(stub.posts()) == 3
    ops = [r for r in await records(redis, names) if r.channel == "ops"]
    assert [(r.attempt, r.outcome, r.status_code) for r in ops] == [
        (1, "retrying", 503),
        (2, "retrying", 429),
        (3, "delivered", 200),
    ]
    assert await redis.xlen(names.deadletter) == 0


@pytest.mark.parametrize(
    "script, posts, outcomes",
    [
        ([400], 1, [(1, "failed", 400)]),  # permanent: no retry
        ([500, 500], 2, [(1, "retrying", 500), (2, "failed", 500)]),  # retries exhausted
    ],
)
async def test_undeliverable_alerts_go_to_the_dead_letter_stream(
    redis: Redis,
    names: StreamNames,
    http: GuardedClient,
    script: list[int],
    posts: int,
    outcomes: list[tuple[int, str, int]],
) -> None:
    with HttpStub(script=list(script)) as stub:
        await process(redis, names, notifier(redis, names, http, hook(stub.url, attempts=2)))
    assert len(stub.posts()) == posts
    ops = [r for r in await records(redis, names) if r.channel == "ops"]
    assert [(r.attempt, r.outcome, r.status_code) for r in ops] == outcomes
    [(_, dead)] = await redis.xrange(names.deadletter)
    assert dead[b"channel"] == b"ops"
    assert b"failed after" in dead[b"dlq:reason"]
    assert msgspec.json.decode(dead[b"data"], type=AlertEvent) == ALERT
    # the console channel was not held back by the failing webhook
    assert any(
        r.channel == "console" and r.outcome == "delivered" for r in await records(redis, names)
    )


async def test_unreachable_webhook_is_retryable(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    await process(
        redis, names, notifier(redis, names, http, hook("http://127.0.0.1:9/", attempts=2))
    )
    ops = [r for r in await records(redis, names) if r.channel == "ops"]
    assert [r.outcome for r in ops] == ["retrying", "failed"]
    assert ops[0].error.startswith("transport: ConnectError")


async def test_a_redelivered_alert_is_not_sent_twice(
    redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    with HttpStub() as stub:
        n = notifier(redis, names, http, hook(stub.url))
        await ensure_group(redis, names.alerts, GROUP)
        await redis.xadd(names.alerts, encode(ALERT))
        [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.alerts: ">"})
        # The worker sent, then died before acknowledging: the entry comes again.
        await n.handle([(i, ALERT) for i, _ in entries], redis.pipeline())
        await n.handle([(i, ALERT) for i, _ in entries], redis.pipeline())
    assert len(stub.posts()) == 1


def test_routing_tree() -> None:
    routes = [
        Route(match=RouteMatch(tenant="acme", severity="critical"), channels=["pager"]),
        Route(match=RouteMatch(tenant="acme"), channels=["slack", "pager"]),
        Route(channels=["catch-all"]),
    ]
    cont = [Route(match=RouteMatch(service="shop"), channels=["a"], continue_=True), *routes]
    warning = msgspec.structs.replace(ALERT, severity="warning")
    other = msgspec.structs.replace(ALERT, tenant="globex")
    assert channels_for(routes, ALERT) == ["pager"]
    assert channels_for(routes, warning) == ["slack", "pager"]
    assert channels_for(routes, other) == ["catch-all"]
    assert channels_for(cont, ALERT) == ["a", "pager"]
    assert channels_for([Route(match=RouteMatch(tenant="x"), channels=["a"])], ALERT) == []


@pytest.mark.parametrize("attempt, low, high", [(1, 0.25, 0.75), (3, 1.0, 3.0), (20, 15, 45)])
def test_backoff_grows_and_is_capped(attempt: int, low: float, high: float) -> None:
    assert backoff(0.5, attempt, lambda: 0.0) == low
    assert backoff(0.5, attempt, lambda: 1.0) == high


async def test_a_failed_mark_write_fails_its_batch_once(redis: Redis, names: StreamNames) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    sent = SentRecords(down, names)
    sent.mark(sent.key("ev1", "ops"), delivered=True)
    with pytest.raises(RedisConnectionError):
        await sent.flush()
    await sent.flush()  # the next batch is not failed by the old error
    await down.aclose()
    ok = SentRecords(redis, names)
    ok.mark(ok.key("ev1", "ops"), delivered=True)
    ok.mark(ok.key("ev2", "ops"), delivered=False)
    await ok.flush()
    assert await ok.claim([ok.key("ev1", "ops"), ok.key("ev2", "ops"), ok.key("ev3", "ops")]) == [
        b"sent",
        b"failed",
        b"",
    ]
