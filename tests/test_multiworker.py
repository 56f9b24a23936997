"""Two workers of every kind at once over the same streams: nothing runs, fires,
is delivered or archived twice, and nothing is skipped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from itertools import pairwise

import msgspec
import psycopg
from redis.asyncio import Redis

from schemas import AlertEvent
from services.evaluator.inspect import replay
from services.evaluator.replay import observations
from services.evaluator.rules import ConsecutiveRule
from services.evaluator.service import build_engine
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
TENANTS = [f"t{i}" for i in range(4)]
INTERVAL = 0.2
WORKERS = 2


def fleet_config(target: str, receiver: str) -> Config:
    return Config(
        tenants=[Tenant(id=t) for t in TENANTS],
        checks=[
            HttpCheck(
                name="web",
                tenant=t,
                service="shop",
                tier="critical",
                url=f"{target}/{t}",
                interval=Seconds(INTERVAL),
                timeout=Seconds(1),
            )
            for t in TENANTS
        ],
        rules=[ConsecutiveRule(name="down", failures=2, successes=2)],
        channels=[WebhookConfig(name="ops", url=receiver + "/hook", backoff=Seconds(0.05))],
        routes=[Route(channels=["ops"])],
    )


class Fleet:
    """``WORKERS`` in-process workers of every role, each its own consumer."""

    def __init__(self, settings: Settings, cfg: Config) -> None:
        self.stops = {role: asyncio.Event() for role in ROLES}
        self.tasks = {
            role: [
                asyncio.create_task(
                    run(
                        dataclasses.replace(settings, consumer_name=f"{role}-{n}"),
                        cfg,
                        [role],
                        self.stops[role],
                    )
                )
                for n in range(WORKERS)
            ]
            for role in ROLES
        }

    async def stop(self, *roles: str) -> None:
        for role in roles:
            self.stops[role].set()
        for role in roles:
            for task in self.tasks[role]:
                await task


@contextlib.asynccontextmanager
async def fleet(settings: Settings, cfg: Config) -> AsyncIterator[Fleet]:
    workers = Fleet(settings, cfg)
    try:
        yield workers
    finally:
        await workers.stop(*ROLES)


def rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


async def test_two_workers_of_every_kind_do_each_thing_once(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    settings = dataclasses.replace(
        settings, database_url=database_url, evaluator_shards=4, probe_tiers=("critical",)
    )

    def hooks() -> list[AlertEvent]:
        return [msgspec.json.decode(r.body, type=AlertEvent) for r in receiver.posts("/hook")]

    def archived(table: str) -> int:
        return int(rows(database_url, f"select count(*) from {table}")[0][0])  # type: ignore[call-overload]

    with HttpStub(status=200) as target, HttpStub(status=200) as receiver:
        async with fleet(settings, fleet_config(target.url, receiver.url)) as workers:
            await wait_until(lambda: len(target.requests) >= 6 * len(TENANTS), what="checks")
            target.status = 503
            await wait_until(lambda: len(hooks()) == len(TENANTS), what="the firing alerts")
            target.status = 200
            await wait_until(lambda: len(hooks()) == 2 * len(TENANTS), what="the resolutions")
            await workers.stop("probe")  # the rest finish what the probes published
            length = int(await redis.xlen(names.results))
            await wait_until(lambda: archived("check_results") == length, what="results")
            await wait_until(lambda: archived("deliveries") == 2 * len(TENANTS), what="archive")

    # Every check ran once per interval. The schedule re-scores a claimed check at least
    # 3/4 of an interval ahead, so a span holds at most span / (0.75 interval) + 1 runs
    # (+1 here: the first and last runs' own delays); two workers running one claim
    # each would double that. None skipped for long: at
    # least half the intervals have a run. (Single runs stray from their phase when
    # the shared event loop is busy, so the bounds are on counts, not on each gap.)
    # Each run gave one result, and both probes took part.
    results = rows(
        database_url, "select tenant, observed_at from check_results order by observed_at"
    )
    for tenant in TENANTS:
        times: list[datetime] = [at for t, at in results if t == tenant]  # type: ignore[misc]
        gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
        span = (times[-1] - times[0]).total_seconds()
        assert span / INTERVAL / 2 <= len(times) <= span / (0.75 * INTERVAL) + 2, (tenant, gaps)
        runs = [r for r in target.requests if r.path == f"/{tenant}"]
        assert len(times) <= len(runs) <= len(times) + 1  # a run cut short by the stop
    agents = {r.headers["user-agent"] for r in target.requests}
    assert len(agents) == WORKERS, agents

    # Each result archived once.
    length = int(await redis.xlen(names.results))
    assert rows(database_url, "select count(*), count(distinct event_id) from check_results") == [
        (length, length)
    ]
    # The alert events are what one evaluator makes of the same results, each once.
    published = [
        msgspec.json.decode(f[b"data"], type=AlertEvent)
        for _, f in await redis.xrange(names.alerts)
    ]
    cfg = fleet_config(target.url, receiver.url)
    expected = replay(build_engine(cfg), await observations(redis, names, "-", "+"))
    assert sorted(e.event_id for e in published) == sorted(e.event_id for e in expected)
    assert len(published) == 2 * len(TENANTS)
    # Each notification delivered once, and archived once.
    delivered = Counter(e.event_id for e in hooks())
    assert delivered == Counter({e.event_id: 1 for e in published})
    assert archived("alert_events") == len(published)
    # Every entry was acknowledged by every group.
    for stream in (names.results, names.alerts, names.deliveries):
        for group in await redis.xinfo_groups(stream):
            assert group["pending"] == 0, (stream, group["name"])
