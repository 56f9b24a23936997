"""A sharded evaluator process killed with SIGKILL: another takes its shards once the
leases lapse, resumes at their cursors, and the alert events are those of one
uninterrupted evaluator (nothing re-fired, no ``for`` timer or pending count lost)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from shared.config import load_config
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.conftest import ON_SINGLE_AND_CLUSTER
from tests.support.wait import wait_until
from tests.test_cluster_shards import SHARDS, TENANTS, result, shards_drained
from tests.test_evaluator_service import alerts, drained, evaluator, sample

pytestmark = ON_SINGLE_AND_CLUSTER
LEASE_MS = 1000
# Observations are dated ahead of the clock, so no tick (which runs at the wall-clock
# time) ever completes a ``for`` timer: only observations do, identically in both runs.
RULES = """\
tenants: [{tenants}]
rules:
  - {{name: disk, type: threshold, source: disk, threshold: 80, for: 60s}}
  - {{name: down, type: consecutive, failures: 3, successes: 1}}
"""


async def feed(redis: Redis, names: StreamNames, steps: range, base: datetime) -> None:
    """Step s at base + 10 s x s. Disk is high from step 0 for every tenant (its ``for``
    timer completes at step 6). Even tenants fail steps 0-2 and 6 (firing before the
    kill, must not re-fire after it); odd ones fail steps 1, 2 and 6 (two before, the
    third after the kill); all are healthy at step 7."""
    pipe = redis.pipeline(transaction=False)
    for step in steps:
        at = base + timedelta(seconds=10 * step)
        for i, tenant in enumerate(TENANTS):
            pipe.xadd(names.metrics, encode(sample(90.0, at=at, tenant=tenant)))
            failing = step in (1, 2, 6) or (step == 0 and i % 2 == 0)
            pipe.xadd(
                names.results, encode(result(tenant, "unhealthy" if failing else "healthy", at))
            )
    await pipe.execute()


BEFORE, AFTER = range(3), range(6, 8)


async def test_a_killed_owners_shards_are_taken_over_at_their_cursors(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(RULES.format(tenants=", ".join(f"{{id: {t}}}" for t in TENANTS)))
    single, split = (StreamNames(settings.stream_prefix + s) for s in "ab")
    base = datetime.now(UTC) + timedelta(seconds=30)
    for steps in (BEFORE, AFTER):
        await feed(redis, single, steps, base)
    async with evaluator(
        dataclasses.replace(settings, stream_prefix=single.prefix), load_config(path)
    ):
        for stream in (single.metrics, single.results):
            await wait_until(lambda s=stream: drained(redis, s, "evaluator"), what="one")
    expected = sorted(a.event_id for a in await alerts(redis, single))

    env = {
        **os.environ,
        "VIGIL_CONFIG": str(path),
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_STREAM_PREFIX": split.prefix,
        "VIGIL_EVALUATOR_SHARDS": str(SHARDS),
        "VIGIL_EVALUATOR_LEASE_MS": str(LEASE_MS),
        "VIGIL_OPS_PORT": "0",
    }
    async with _evaluator_process(env) as first:
        await feed(redis, split, BEFORE, base)
        await wait_until(lambda: shards_drained(redis, split), what="the first owner")
        assert await _owners(redis, split) == {first.pid}
        fired_before = len(await alerts(redis, split))
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    async with _evaluator_process(env) as second:
        await feed(redis, split, AFTER, base)
        await wait_until(lambda: _owners_are(redis, split, {second.pid}), what="the takeover")
        await wait_until(lambda: shards_drained(redis, split), what="the second owner")
        second.send_signal(signal.SIGTERM)
        assert await second.wait() == 0

    assert fired_before == len(TENANTS) // 2  # the even tenants' "down" fired before the kill
    # disk fires once per tenant, "down" fires and resolves once per tenant
    assert len(expected) == 3 * len(TENANTS)
    assert sorted(a.event_id for a in await alerts(redis, split)) == expected


@asynccontextmanager
async def _evaluator_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from shared.cli import main; main()", "run", "evaluator", env=env
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _owners(redis: Redis, names: StreamNames) -> set[int | None]:
    """The pids of the shards' lease holders (a member is ``<host>-<pid>``)."""
    holders = [await redis.get(names.shard(s, "evaluator:lease")) for s in range(SHARDS)]
    return {int(h.rsplit(b"-", 1)[1]) if h else None for h in holders}


async def _owners_are(redis: Redis, names: StreamNames, pids: set[int]) -> bool:
    return await _owners(redis, names) == pids
