"""Evaluator stream shards with leases, on one Redis and on a 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from typer.testing import CliRunner

from schemas import ApplicationError, CheckResult
from services.evaluator.router import ROUTER_GROUP, shard_of
from services.evaluator.rules import ConsecutiveRule
from services.evaluator.shards import KINDS
from shared.cli import app
from shared.config import load_config
from shared.errors import SettingsError
from shared.runner import run
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.wait import wait_until
from tests.test_evaluator_service import DISK, alerts, config, drained, evaluator, sample

pytestmark = ON_SINGLE_AND_CLUSTER
SHARDS = 4
TENANTS = [f"t{i}" for i in range(12)]
RULES = (DISK, ConsecutiveRule(name="down", failures=2, successes=1))


def result(tenant: str, status: str, at: datetime) -> CheckResult:
    return CheckResult(
        tenant=tenant, service="shop", check="web", tier="core", status=status,  # type: ignore[arg-type]
        latency_ms=1.0, observed_at=at,
    )  # fmt: skip


async def feed(redis: Redis, names: StreamNames, steps: range, start: datetime) -> None:
    pipe = redis.pipeline(transaction=False)
    for step in steps:
        at = start + timedelta(seconds=step)
        for i, tenant in enumerate(TENANTS):
            value = 90.0 if (step + i) % 3 else 10.0
            pipe.xadd(names.metrics, encode(sample(value, at=at, tenant=tenant)))
            status = "unhealthy" if (step * i) % 4 else "healthy"
            pipe.xadd(names.results, encode(result(tenant, status, at)))
    await pipe.execute()


async def shards_drained(redis: Redis, names: StreamNames) -> bool:
    """The router took every public entry and each shard's owner committed its last one."""
    for stream in (names.results, names.metrics):
        if not await drained(redis, stream, ROUTER_GROUP):
            return False
    for shard in range(SHARDS):
        cursor = await redis.hgetall(names.shard(shard, "evaluator:cursor"))  # type: ignore[misc]
        for kind in KINDS:
            stream = names.shard(shard, kind)
            last = await redis.xrevrange(stream, count=1)
            if last and cursor.get(stream.encode()) != last[0][0]:
                return False
    return True


def sharded(settings: Settings, names: StreamNames, member: str) -> Settings:
    return dataclasses.replace(
        settings, stream_prefix=names.prefix, evaluator_shards=SHARDS, consumer_name=member
    )


async def test_two_sharded_evaluators_produce_what_one_does(
    redis: Redis, settings: Settings
) -> None:
    cfg = config(*RULES, tenants=TENANTS)
    single = StreamNames(settings.stream_prefix + "a")
    split = StreamNames(settings.stream_prefix + "b")
    start = datetime.now(UTC) - timedelta(minutes=5)
    await feed(redis, single, range(6), start)
    await feed(redis, split, range(3), start)

    one = dataclasses.replace(settings, stream_prefix=single.prefix)
    async with evaluator(one, cfg):
        for stream in (single.metrics, single.results):
            await wait_until(lambda s=stream: drained(redis, s, "evaluator"), what="one")

    async def owners() -> set[bytes | None]:
        return {await redis.get(split.shard(s, "evaluator:lease")) for s in range(SHARDS)}

    async with evaluator(sharded(settings, split, "a"), cfg):
        await wait_until(lambda: shards_drained(redis, split), what="the first half")
        assert await owners() == {b"a"}
        async with evaluator(sharded(settings, split, "b"), cfg):
            # "a" hands half of its shards over to the newcomer, state and all.
            await wait_until(lambda: owners_are(owners, {b"a", b"b"}), what="a fair share")
            await feed(redis, split, range(3, 6), start)
            await wait_until(lambda: shards_drained(redis, split), what="the second half")

    expected = sorted(a.event_id for a in await alerts(redis, single))
    assert len(expected) > 20
    assert sorted(a.event_id for a in await alerts(redis, split)) == expected
    # Each tenant's observations went to exactly its shard, and several shards carry load.
    for shard in range(SHARDS):
        for _, fields in await redis.xrange(split.shard(shard, "results")):
            tenant = msgspec.json.decode(fields[b"data"], type=CheckResult).tenant
            assert shard_of(tenant, SHARDS) == shard
    assert len({shard_of(t, SHARDS) for t in TENANTS}) > 1


async def test_a_handover_neither_refires_nor_forgets_a_pending_count(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    cfg = config(ConsecutiveRule(name="down", failures=3, successes=1), tenants=TENANTS)
    now = datetime.now(UTC)
    async with evaluator(sharded(settings, names, "first"), cfg):
        for _ in range(2):  # two of three failures: a pending count, nothing fired
            await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
        await wait_until(lambda: shards_drained(redis, names), what="first owner")
    assert await alerts(redis, names) == []
    shard = names.shard(shard_of("t1", SHARDS), "evaluator:lease")
    assert await redis.get(shard) is None  # released on a clean stop

    async with evaluator(sharded(settings, names, "second"), cfg):
        await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
        await wait_until(lambda: _count(redis, names, 1), what="the firing alert")
        await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
        await wait_until(lambda: shards_drained(redis, names), what="second owner")
    async with evaluator(sharded(settings, names, "third"), cfg):
        await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
        await wait_until(lambda: shards_drained(redis, names), what="third owner")
    assert [a.state for a in await alerts(redis, names)] == ["firing"]  # no re-fire


async def owners_are(owners: Callable[[], Awaitable[set[bytes | None]]], want: set[bytes]) -> bool:
    return await owners() == want


async def _count(redis: Redis, names: StreamNames, n: int) -> bool:
    return len(await alerts(redis, names)) >= n


async def test_shard_keys_spread_over_cluster_nodes(
    redis: Redis, names: StreamNames, redis_kind: str
) -> None:
    slots = {key_slot(names.shard(s, "results").encode()) for s in range(8)}
    assert len(slots) == 8  # one slot per shard ...
    for shard in range(8):  # ... holding all of that shard's keys
        keys = [names.shard(shard, k) for k in (*KINDS, "evaluator:state", "evaluator:lease")]
        assert len({key_slot(k.encode()) for k in keys}) == 1
    if redis_kind == "cluster":
        nodes = {
            redis.get_node_from_key(names.shard(s, "results")).name  # type: ignore[attr-defined]
            for s in range(8)
        }
        assert len(nodes) > 1


async def test_shards_and_partitions_together_are_a_settings_error(settings: Settings) -> None:
    both = dataclasses.replace(settings, evaluator_shards=4, evaluator_partitions=2)
    with pytest.raises(SettingsError, match="VIGIL_EVALUATOR_SHARDS"):
        await run(both, config(*RULES), ["evaluator"], asyncio.Event())


async def test_rules_check_reads_every_shard_checkpoint(
    redis: Redis, settings: Settings, names: StreamNames, tmp_path: Path
) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "tenants: [{id: t1}, {id: t2}]\n"
        "rules: [{name: down, type: consecutive, failures: 1, successes: 1}]\n"
    )
    now = datetime.now(UTC)
    async with evaluator(sharded(settings, names, "solo"), load_config(path)):
        for tenant in ("t1", "t2"):
            await redis.xadd(names.results, encode(result(tenant, "unhealthy", now)))
        await wait_until(lambda: _count(redis, names, 2), what="two firing alerts")
    env = {
        "VIGIL_CONFIG": str(path),
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_STREAM_PREFIX": names.prefix,
        "VIGIL_EVALUATOR_SHARDS": str(SHARDS),
    }
    out = await asyncio.to_thread(CliRunner().invoke, app, ["rules", "check", "-v"], env=env)
    assert out.exit_code == 0, out.output
    assert "t1/shop" in out.output and "t2/shop" in out.output, out.output


async def test_a_new_router_first_routes_what_a_dead_one_left_pending(
    redis: Redis, settings: Settings, names: StreamNames
) -> None:
    now = datetime.now(UTC)
    for stream in (names.results, names.metrics, names.errors):
        await ensure_group(redis, stream, ROUTER_GROUP)
    for _ in range(2):
        await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
    await redis.xadd(names.metrics, encode(sample(1.0, at=now, tenant="t1")))
    error = ApplicationError(
        tenant="t1", service="shop", source="api", error_type="E", message="m", observed_at=now
    )
    await redis.xadd(names.errors, encode(error))
    # A router read these and died before acknowledging them.
    streams = {names.results: ">", names.metrics: ">", names.errors: ">"}
    read = await redis.xreadgroup(ROUTER_GROUP, "router", streams)  # type: ignore[arg-type]
    assert sum(len(entries) for _, entries in read) == 4
    cfg = config(ConsecutiveRule(name="down", failures=3, successes=1), tenants=TENANTS)
    async with evaluator(sharded(settings, names, "next"), cfg):
        await redis.xadd(names.results, encode(result("t1", "unhealthy", now)))
        await wait_until(lambda: _count(redis, names, 1), what="three failures in a row")
        await redis.xadd(names.results, encode(result("t2", "unhealthy", now)))
        await wait_until(lambda: shards_drained(redis, names), what="the new entries")
    assert [a.tenant for a in await alerts(redis, names)] == ["t1"]
