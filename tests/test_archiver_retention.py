"""Retention across a month boundary, and stream trimming that respects consumer groups."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver import partitions
from services.archiver.service import Archiver
from services.archiver.settings import ArchiveConfig
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group
from tests.test_archiver import result


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def partition_days(database_url: str, table: str = "check_results") -> list[str]:
    return [
        r[0]
        for r in query(
            database_url,
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            f"where i.inhparent = '{table}'::regclass order by 1",
        )
    ]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_partitions_are_made_ahead_and_expired_days_dropped_across_a_month_end(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    clock = Clock(datetime(2026, 10, 30, 12, tzinfo=UTC))
    config = ArchiveConfig(retention_days=3, retention={"metric_samples": 1}, partitions_ahead=2)
    archiver = Archiver(database_url, names, config, clock=clock)
    await archiver.housekeep()
    assert partition_days(database_url) == [
        "check_results_p20261030",
        "check_results_p20261031",
        "check_results_p20261101",
    ]
    # One result a day from 27 October (within 3 days then) to 2 November.
    items = [
        (f"{d}-0".encode(), result(d, datetime(2026, 10, 27, 6, tzinfo=UTC) + timedelta(days=d)))
        for d in range(7)
    ]
    await archiver.writers[CheckResult](items, redis.pipeline())
    assert len(partition_days(database_url)) == 7  # 27 Oct .. 2 Nov

    clock.now = datetime(2026, 11, 2, 0, 5, tzinfo=UTC)
    plan, _ = await archiver.housekeep(dry_run=True)
    assert [d.partition for d in plan.drops if d.table == "check_results"] == [
        "check_results_p20261027",
        "check_results_p20261028",
        "check_results_p20261029",  # wholly older than 3 days before 2 Nov 00:05
    ]
    assert len(partition_days(database_url)) == 7  # a dry run changes nothing
    await archiver.housekeep()
    await archiver.close()
    assert partition_days(database_url) == [
        "check_results_p20261030",
        "check_results_p20261031",
        "check_results_p20261101",
        "check_results_p20261102",
        "check_results_p20261103",
        "check_results_p20261104",
    ]
    # metric samples keep 1 day: only 1 November onwards
    assert partition_days(database_url, "metric_samples")[0] == "metric_samples_p20261101"
    assert [
        r[0] for r in query(database_url, "select stream_id from check_results order by 1")
    ] == ["3-0", "4-0", "5-0", "6-0"]
    # rolled up before their raw rows went; then pruned by their own retention, with DELETE
    assert query(database_url, "select min(hour), count(*) from check_rollups") == [
        (datetime(2026, 10, 30, 6, tzinfo=UTC), 4)
    ]
    assert query(database_url, "select action from audit_log") == [("prune",)]


async def test_streams_are_trimmed_to_the_window_but_never_past_a_groups_pending_entry(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    base_ms = 1_800_000_000_000
    for i in range(10):  # one entry a minute
        await redis.xadd(
            names.results, encode(result(i, datetime.now(UTC))), id=f"{base_ms + i * 60_000}-0"
        )
    await ensure_group(redis, names.results, "slow")
    await redis.xreadgroup("slow", "w", {names.results: ">"}, count=4)  # 4 delivered
    await redis.xack(names.results, "slow", f"{base_ms}-0", f"{base_ms + 60_000}-0")  # 2 acked
    now = datetime.fromtimestamp((base_ms + 9 * 60_000) / 1000, UTC)
    config = ArchiveConfig(replay_window=60.0 * 3)  # would keep the last 4 minutes: 6..9
    archiver = Archiver(database_url, names, config, redis=redis, clock=lambda: now)

    _, dry = await archiver.housekeep(dry_run=True)
    assert [(t.stream, t.minid, t.entries) for t in dry] == [
        (names.results, f"{base_ms + 2 * 60_000}-0", 2)
    ]
    assert await redis.xlen(names.results) == 10
    await archiver.housekeep()
    assert await redis.xlen(names.results) == 8  # entry 2 is pending: kept, and all after it

    await redis.xack(
        names.results, "slow", f"{base_ms + 2 * 60_000}-0", f"{base_ms + 3 * 60_000}-0"
    )
    await archiver.housekeep()  # nothing pending; entries 4.. never read: kept
    assert await redis.xlen(names.results) == 6
    await redis.xreadgroup("slow", "w", {names.results: ">"})
    await redis.xack(names.results, "slow", *[f"{base_ms + i * 60_000}-0" for i in range(4, 10)])
    await archiver.housekeep()  # now the window decides
    await archiver.close()
    first = (await redis.xrange(names.results, count=1))[0][0]
    assert first == f"{base_ms + 6 * 60_000}-0".encode()


async def test_prune_command_dry_run_shows_and_keeps_then_prunes(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await partitions.ensure(conn, "check_results", [old.date()])
        await conn.commit()
    await redis.xadd(names.results, encode(result(1, old)), id="1000-0")  # far past the window
    env = {
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_STREAM_PREFIX": settings.stream_prefix,
        "PATH": "/usr/bin:/bin",
    }
    vigil = [sys.executable, "-c", "from shared.cli import main; main()", "prune"]
    name = partitions.partition_name("check_results", old.date())
    dry = await asyncio.to_thread(
        subprocess.run, [*vigil, "--dry-run"], capture_output=True, text=True, env=env
    )
    assert dry.returncode == 0, dry.stderr
    assert f"would: drop partition {name} (check_results, {old.date()})" in dry.stdout
    assert f"would: trim 1 entries of {names.results} before" in dry.stdout
    assert name in partition_days(database_url) and await redis.xlen(names.results) == 1
    done = await asyncio.to_thread(subprocess.run, vigil, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"did: drop partition {name}" in done.stdout
    assert name not in partition_days(database_url) and await redis.xlen(names.results) == 0
