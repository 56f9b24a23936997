"""The evaluator adapter against a real Redis: streams in, alert events out."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import msgspec
from redis.asyncio import Redis

from schemas import AlertEvent, ApplicationError, CheckResult, MetricSample
from services.evaluator.observation import Observation, from_result, from_sample
from services.evaluator.rules import (
    AnyRule,
    ApplicationErrorRule,
    ConsecutiveRule,
    SloRule,
    ThresholdRule,
)
from services.evaluator.service import Evaluator
from shared.config import Config, Tenant
from shared.configbase import Seconds
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.support.wait import wait_until

DISK = ThresholdRule(name="disk", source="disk", threshold=80, category="system")


def config(*rules: AnyRule, tenants: Sequence[str] = ("acme",)) -> Config:
    return Config(tenants=[Tenant(id=t) for t in tenants], rules=list(rules))


def sample(
    value: float, at: datetime | None = None, tenant: str = "acme", **kw: str
) -> MetricSample:
    return MetricSample(
        tenant=tenant,
        service=kw.get("service", "shop"),
        metric=kw.get("metric", "disk"),
        value=value,
        observed_at=at or datetime.now(UTC),
    )


async def alerts(redis: Redis, names: StreamNames) -> list[AlertEvent]:
    entries = await redis.xrange(names.alerts)
    return [msgspec.json.decode(f[b"data"], type=AlertEvent) for _, f in entries]


async def drained(redis: Redis, stream: str, group: str) -> bool:
    """Every entry of ``stream`` was read and acknowledged by ``group``."""
    length = int(await redis.xlen(stream))
    for info in await redis.xinfo_groups(stream):
        if info["name"].decode() == group:
            return int(info["entries-read"] or 0) == length and int(info["pending"]) == 0
    return False


@asynccontextmanager
async def evaluator(settings: Settings, cfg: Config) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, cfg, ["evaluator"], stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_metrics_fire_and_resolve_through_the_streams(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    async with evaluator(settings, config(DISK)):
        await redis.xadd(names.metrics, encode(sample(90)))
        await wait_until(lambda: _count(redis, names, 1), what="the firing alert")
        await redis.xadd(names.metrics, encode(sample(10)))
        await wait_until(lambda: _count(redis, names, 2), what="the resolved alert")
    firing, resolved = await alerts(redis, names)
    assert (firing.state, resolved.state) == ("firing", "resolved")
    assert firing.message == "last disk is 90 (threshold 80, exceeded by 12 %)"
    assert firing.category == "system" and firing.priority == "medium"


async def _count(redis: Redis, names: StreamNames, n: int) -> bool:
    return int(await redis.xlen(names.alerts)) >= n


async def test_bad_input_is_dead_lettered_or_counted_and_the_evaluator_goes_on(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    now = datetime.now(UTC)
    async with evaluator(settings, config(DISK)):
        await redis.xadd(names.metrics, {"data": b'{"tenant": "acme", "value": "high"}'})
        infinite = encode(sample(1.5))[b"data"].replace(b"1.5", b"1e999")  # type: ignore[union-attr]
        await redis.xadd(names.metrics, {"data": infinite})
        await redis.xadd(names.metrics, encode(sample(99, tenant="nobody")))
        await redis.xadd(names.metrics, encode(sample(99, at=now + timedelta(hours=2))))
        await redis.xadd(names.metrics, encode(sample(99, at=now - timedelta(days=3))))
        extra = encode(sample(95))[b"data"].replace(b'"value"', b'"colour":"red","value"')  # type: ignore[union-attr]
        await redis.xadd(names.metrics, {"data": extra})
        await wait_until(lambda: _count(redis, names, 1), what="the good sample's alert")
        await wait_until(lambda: drained(redis, names.metrics, "evaluator"), what="all read")
        ignored = await Evaluator(config(DISK), redis, names).ignored()
    assert ignored == {
        "unknown tenant": 1,
        "timestamp in the future": 1,
        "timestamp too old": 1,
        "unknown fields (ignored, entry evaluated)": 1,
    }
    reasons = [f[b"dlq:reason"].decode() for _, f in await redis.xrange(names.deadletter)]
    assert len(reasons) == 2 and any("out of range" in r for r in reasons)
    (alert,) = await alerts(redis, names)
    assert alert.value == 95


async def test_restart_neither_refires_nor_forgets_a_pending_timer(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    down = ConsecutiveRule(name="down", failures=2)
    slow = ThresholdRule(name="slow", source="q", threshold=10, for_=Seconds(600))
    cfg = config(down, slow)
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    first = Evaluator(cfg, redis, names)
    await first.load()
    pipe = redis.pipeline(transaction=True)
    commit = first.evaluate(
        [*_observations(cfg, t0), *_observations(cfg, t0 + timedelta(seconds=1))],
        pipe,
        t0.timestamp() + 60,
    )
    await pipe.execute()
    commit()
    assert [a.rule for a in await alerts(redis, names)] == ["down"]

    second = Evaluator(cfg, redis, names)  # a new process: only the checkpoint carries over
    await second.load()
    pipe = redis.pipeline(transaction=True)
    second.evaluate(_observations(cfg, t0 + timedelta(seconds=2)), pipe, t0.timestamp() + 60)
    await pipe.execute()
    assert [a.rule for a in await alerts(redis, names)] == ["down"]  # no re-fire
    assert await second.tick(t0.timestamp() + 599) == 0
    assert await second.tick(t0.timestamp() + 600) == 1  # the `for` timer survived
    assert [a.rule for a in await alerts(redis, names)] == ["down", "slow"]


def _observations(cfg: Config, at: datetime) -> list[Observation]:
    result = CheckResult(
        tenant="acme", service="shop", check="web", tier="core", status="unhealthy",
        latency_ms=5.0, observed_at=at,
    )  # fmt: skip
    return [*from_result(result), from_sample(sample(50, at=at, metric="q"))]


async def test_partitioned_evaluators_produce_what_one_does(
    redis: Redis, settings: Settings
) -> None:
    rules = (DISK, ConsecutiveRule(name="down", failures=2, successes=1))
    tenants = [f"t{i}" for i in range(12)]
    cfg = config(*rules, tenants=tenants)
    single, split = (
        StreamNames(settings.stream_prefix + "a"),
        StreamNames(settings.stream_prefix + "b"),
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    for names in (single, split):
        pipe = redis.pipeline(transaction=False)
        for step in range(6):
            at = start + timedelta(seconds=step)
            for i, tenant in enumerate(tenants):
                value = 90.0 if (step + i) % 3 else 10.0
                pipe.xadd(names.metrics, encode(sample(value, at=at, tenant=tenant)))
                status = "unhealthy" if (step * i) % 4 else "healthy"
                result = CheckResult(
                    tenant=tenant, service="shop", check="web", tier="core", status=status,
                    latency_ms=1.0, observed_at=at,
                )  # fmt: skip
                pipe.xadd(names.results, encode(result))
        await pipe.execute()

    one = dataclasses.replace(settings, stream_prefix=single.prefix)
    async with evaluator(one, cfg):
        for stream in (single.metrics, single.results):
            await wait_until(lambda s=stream: drained(redis, s, "evaluator"), what="one")
    parts = [
        dataclasses.replace(
            settings,
            stream_prefix=split.prefix,
            evaluator_partition=p,
            evaluator_partitions=3,
            consumer_name=f"p{p}",
        )
        for p in range(3)
    ]
    async with evaluator(parts[0], cfg), evaluator(parts[1], cfg), evaluator(parts[2], cfg):
        for p in range(3):
            for stream in (split.metrics, split.results):
                group = f"evaluator-{p}of3"
                await wait_until(lambda s=stream, g=group: drained(redis, s, g), what="three")

    expected = sorted(a.event_id for a in await alerts(redis, single))
    assert len(expected) > 20
    assert sorted(a.event_id for a in await alerts(redis, split)) == expected


async def test_application_errors_stream_becomes_application_alerts(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    report = ApplicationError(
        tenant="acme",
        service="shop",
        source="checkout-api",
        error_type="DatabaseError",
        message="connection refused",
        affected_users=3,
        observed_at=datetime.now(UTC),
    )
    async with evaluator(settings, config(ApplicationErrorRule(name="app"))):
        await redis.xadd(names.errors, encode(report))
        await redis.xadd(names.errors, encode(report))  # a repeat: deduplicated
        await wait_until(lambda: drained(redis, names.errors, "evaluator"), what="errors read")
    (alert,) = await alerts(redis, names)
    assert (alert.category, alert.priority, alert.rule) == ("application", "critical", "app")


async def test_a_tick_waits_for_the_batch_in_flight(redis: Redis, names: StreamNames) -> None:
    rule = ThresholdRule(name="slow", source="q", threshold=10, for_=Seconds(60))
    evaluator = Evaluator(config(rule), redis, names)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    pipe = redis.pipeline(transaction=True)
    commit = await evaluator.handle_metrics([(b"1-0", sample(50, at=t0, metric="q"))], pipe)
    tick = asyncio.create_task(evaluator.tick(t0.timestamp() + 60))
    await asyncio.sleep(0)  # let the tick start: it must wait for the batch's commit
    assert not tick.done()
    await pipe.execute()
    commit()
    assert await tick == 1  # it saw the committed pending timer and fired
    assert [a.rule for a in await alerts(redis, names)] == ["slow"]


async def test_a_batch_that_never_committed_is_forgotten(redis: Redis, names: StreamNames) -> None:
    evaluator = Evaluator(config(DISK), redis, names)
    evaluator.stall_s = 0.05
    await evaluator.handle_metrics([(b"1-0", sample(95))], redis.pipeline())  # never executed
    pipe = redis.pipeline(transaction=True)
    commit = await evaluator.handle_metrics([(b"2-0", sample(96))], pipe)
    await pipe.execute()
    commit()
    (alert,) = await alerts(redis, names)  # the lost batch left no trace in state
    assert alert.value == 96


async def test_slo_budget_left_is_published_for_the_api(redis: Redis, names: StreamNames) -> None:
    slo = SloRule(name="avail", objective=0.99, bad="errors", total="requests")
    evaluator = Evaluator(config(slo), redis, names)
    now = datetime.now(UTC)
    pipe = redis.pipeline(transaction=True)
    samples = [sample(1000, metric="requests", at=now), sample(5, metric="errors", at=now)]
    commit = await evaluator.handle_metrics([(b"1-0", s) for s in samples], pipe)
    await pipe.execute()
    commit()
    budget = await redis.hgetall(evaluator.budget_key)
    assert budget == {b"avail/acme/shop": b"0.500000"}  # 0.5 % errors of a 1 % budget


async def test_a_tick_that_only_slides_windows_writes_nothing(
    redis: Redis, names: StreamNames
) -> None:
    rule = ThresholdRule(name="sum", source="q", aggregate="sum", window=Seconds(60), threshold=9)
    evaluator = Evaluator(config(rule), redis, names)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    pipe = redis.pipeline(transaction=True)
    commit = await evaluator.handle_metrics([(b"1-0", sample(5, at=t0, metric="q"))], pipe)
    await pipe.execute()
    commit()
    before = await redis.hgetall(evaluator.state_key)
    assert await evaluator.tick(t0.timestamp() + 120) == 0  # the sample left the window
    assert await redis.hgetall(evaluator.state_key) == before


async def test_an_unreadable_checkpoint_entry_is_skipped(redis: Redis, names: StreamNames) -> None:
    first = Evaluator(config(DISK), redis, names)
    pipe = redis.pipeline(transaction=True)
    commit = await first.handle_metrics([(b"1-0", sample(95))], pipe)
    await pipe.execute()
    commit()
    await redis.hset(first.state_key, "old\x1fformat", b"\x81\xa7failing\x03")  # an older release
    second = Evaluator(config(DISK), redis, names)
    await second.load()
    assert list(second.states) == list(first.states)
    assert second.engine.firing  # the firing alert is known again (inhibition, no re-fire)
