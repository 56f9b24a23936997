"""An acknowledgement reaches the channels: ack in PostgreSQL -> ``acknowledged`` alert
event on the stream -> PagerDuty acknowledge (same dedup_key), a short message on chat
channels, nothing on SMS, nothing into groups; the archiver keeps the alert acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest_asyncio
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import AlertEvent
from services.archiver import lifecycle
from services.archiver.history import open_history
from services.archiver.service import GROUP as ARCHIVER
from services.archiver.service import Archiver
from services.notifier.channels import SendContext
from services.notifier.channels.pagerduty import PagerDutyConfig
from services.notifier.channels.slack import SlackConfig
from services.notifier.channels.sms import SmsConfig
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.service import Notifier
from shared.config import Config, Route, RouteMatch
from shared.consumer import BatchProcessor, Consumer
from shared.netguard import EgressPolicy, GuardedClient, guarded_session
from shared.streams import StreamNames, encode, ensure_group
from tests.support.http import HttpStub
from tests.test_archiver_backends import count
from tests.test_channels import FIRING, START


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[GuardedClient]:
    async with guarded_session(EgressPolicy()) as client:
        yield client


async def consume(redis: Redis, names: StreamNames, consumer: Consumer[Any]) -> None:
    """Everything new on the alerts stream through ``consumer``'s real batch adapter."""
    await ensure_group(redis, names.alerts, consumer.group)
    [[_, entries]] = await redis.xreadgroup(consumer.group, "w", {names.alerts: ">"})
    ids, fields = [i for i, _ in entries], [f for _, f in entries]
    await BatchProcessor(redis, names, consumer, 5)(ids, fields)


def config(url: str) -> Config:
    return Config(
        channels=[
            PagerDutyConfig(name="pd", routing_key="R0UTINGKEY", base_url=url),
            SlackConfig(name="slack", url=url + "/slack"),
            SmsConfig(
                name="sms", account_sid="AC1", auth_token="t", from_="+1", to="+2", base_url=url
            ),
            WebhookConfig(name="am", url=url + "/am", format="alertmanager"),
            WebhookConfig(name="hook", url=url + "/hook"),
            SlackConfig(name="grouped", url=url + "/grouped"),
        ],
        routes=[
            Route(channels=["grouped"], group_by=["service"], continue_=True),
            Route(channels=["pd", "slack", "sms", "am", "hook"]),
        ],
    )


async def test_acknowledging_an_alert_acknowledges_it_in_pagerduty(
    redis: Redis, names: StreamNames, database_url: str, http: GuardedClient
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: START)
    [archive] = [c for c in archiver.consumers() if c.stream == names.alerts]
    assert archive.group == ARCHIVER
    with HttpStub(status=202) as stub:
        notifier = Notifier(config(stub.url), redis, names, SendContext(http, redis, names))
        await redis.xadd(names.alerts, encode(FIRING))  # as the evaluator does
        await consume(redis, names, notifier.consumer())
        await consume(redis, names, archive)
        async with await AsyncConnection.connect(database_url) as conn:
            found = await conn.execute("SELECT id FROM alerts WHERE fingerprint = 'fp1'")
            [(alert_id,)] = await found.fetchall()
            publish = lifecycle.stream_publisher(redis, names)
            await lifecycle.acknowledge(
                conn, alert_id, by="alice", note="on it", now=START, publish=publish
            )
        await consume(redis, names, notifier.consumer())
        await consume(redis, names, archive)
        # A redelivered or repeated acknowledgement is not sent twice.
        await redis.xadd(names.alerts, (await redis.xrange(names.alerts))[-1][1])
        await consume(redis, names, notifier.consumer())

        trigger, ack = (msgspec.json.decode(r.body) for r in stub.posts("/v2/enqueue"))
        assert trigger["event_action"] == "trigger"
        assert ack == {
            "routing_key": "R0UTINGKEY",
            "event_action": "acknowledge",
            "dedup_key": trigger["dedup_key"],
        }
        firing, acked = (msgspec.json.decode(r.body) for r in stub.posts("/slack"))
        assert firing["text"].startswith("[FIRING:critical]")
        assert acked["text"] == "[ACKNOWLEDGED] acme/shop: shop is down"
        assert acked["attachments"][0]["text"] == "Acknowledged by alice: on it"
        assert len(stub.posts("/2010-04-01/")) == 1  # SMS: the firing text only
        assert len(stub.posts("/am")) == 1  # Alertmanager's body knows no acknowledgement
        [_, hook] = stub.posts("/hook")
        event = msgspec.json.decode(hook.body, type=AlertEvent)
        assert (event.state, event.acknowledged_by, event.acknowledged_at) == (
            "acknowledged",
            "alice",
            START,
        )
    # The grouped route holds the firing alert only: an acknowledgement is not news there.
    [group_key] = await redis.zrange(names.key("groups"), 0, -1)
    held = await redis.hgetall(names.key(f"group:{group_key.decode()}"))
    assert [msgspec.json.decode(v, type=AlertEvent).state for v in held.values()] == ["firing"]
    async with await AsyncConnection.connect(database_url) as conn:
        assert (await lifecycle.get(conn, alert_id)).state == "acknowledged"


async def test_an_acknowledgement_reaches_routes_that_match_on_category(
    store_url: str, redis: Redis, names: StreamNames, http: GuardedClient
) -> None:
    # The acknowledgement is rebuilt from the alerts table, which must keep the category.
    archiver = Archiver(store_url, names, clock=lambda: START)
    [archive] = [c for c in archiver.consumers() if c.stream == names.alerts]
    with HttpStub(status=200) as stub:
        routes = Config(
            channels=[
                WebhookConfig(name="db", url=stub.url + "/db"),
                WebhookConfig(name="sec", url=stub.url + "/sec"),
            ],
            routes=[
                Route(match=RouteMatch(category="database"), channels=["db"]),
                Route(match=RouteMatch(category="security"), channels=["sec"]),
            ],
        )
        notifier = Notifier(routes, redis, names, SendContext(http, redis, names))
        await redis.xadd(names.alerts, encode(msgspec.structs.replace(FIRING, category="database")))
        await consume(redis, names, notifier.consumer())
        await consume(redis, names, archive)
        await archiver.close()
        publish = lifecycle.stream_publisher(redis, names)
        async with open_history(store_url) as history:
            alert_id = count(store_url, "SELECT id FROM alerts")
            await history.act(alert_id, "acknowledged", by="alice", now=START, publish=publish)
        await consume(redis, names, notifier.consumer())
    events = [msgspec.json.decode(r.body, type=AlertEvent) for r in stub.posts("/db")]
    assert [(e.state, e.category) for e in events] == [
        ("firing", "database"),
        ("acknowledged", "database"),
    ]
    assert stub.posts("/sec") == []
