"""A batch written over several connections (lanes): each row once, whatever a lane did."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import CheckResult
from services.archiver.service import Archiver, Writer
from services.archiver.store import ALERTS, RESULTS, Item, lanes, write
from shared.metrics import REGISTRY
from shared.streams import StreamNames
from tests.test_archiver import NOW, result, rows


def batch(first: int, count: int) -> list[Item]:
    # One row every 3 s: 1,200 rows an hour, so lanes of 1,000+ rows span hours.
    return [
        (f"{1_700_000_000_000 + i}-0".encode(), result(i, NOW + timedelta(seconds=i * 3)))
        for i in range(first, first + count)
    ]


def archived_rows(kind: str) -> float:
    labels = {"table": "check_results", "outcome": kind}
    return REGISTRY.get_sample_value("vigil_archived_rows_total", labels) or 0.0


def test_only_batches_big_enough_and_without_ordered_effects_are_split() -> None:
    assert [lanes(RESULTS, n) for n in (0, 500, 1_999, 2_000, 50_000)] == [1, 1, 1, 2, 2]
    assert lanes(ALERTS, 50_000) == 1  # lifecycle updates are ordered: one transaction


async def test_a_batch_partly_there_adds_only_the_missing_rows_over_two_lanes(
    database_url: str,
) -> None:
    items = batch(0, 2_400)  # 10:30 to 12:30; lane 0 takes rows 0-1199, lane 1 the rest
    conns = [await AsyncConnection.connect(database_url) for _ in range(2)]
    try:
        kw = {"today": NOW.date(), "retention_days": 30}
        first = await write(conns[0], RESULTS, items[600:1_800], **kw)  # type: ignore[arg-type]
        again = await write(conns, RESULTS, items, **kw)  # type: ignore[arg-type]
        once_more = await write(conns, RESULTS, items, **kw)  # type: ignore[arg-type]
    finally:
        for conn in conns:
            await conn.close()
    assert (first.new, first.duplicate) == (1_200, 0)
    assert (again.new, again.duplicate) == (1_200, 1_200)
    assert (once_more.new, once_more.duplicate) == (0, 2_400)
    assert rows(database_url, "select count(*), count(distinct stream_id) from check_results") == [
        (2_400, 2_400)
    ]
    # Only rows really added note their hours: 11:00 by the first write (rows 600-1799),
    # then 10:00 by lane 0 (rows 0-599 new) and 12:00 by lane 1 (rows 1800-2399 new).
    assert rows(
        database_url,
        "select extract(hour from hour at time zone 'UTC')::int from check_rollups_pending "
        "order by 1",
    ) == [(10,), (11,), (12,)]


async def test_a_lane_lost_mid_batch_is_retried_and_every_row_lands_once(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: NOW)
    writer = archiver.writers[CheckResult]
    assert isinstance(writer, Writer)
    await writer(batch(0, 2_000), redis.pipeline())
    assert len(writer.conns) == 2
    with psycopg.connect(database_url, autocommit=True) as admin:
        # With a timeout it returns once the backend is gone, not just signalled.
        pid = writer.conns[1].info.backend_pid
        admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
    new, duplicate = archived_rows("new"), archived_rows("duplicate")
    # Lane 0 commits its half, lane 1 finds its server gone: the whole batch comes again.
    await writer(batch(2_000, 2_000), redis.pipeline())
    await archiver.close()
    assert rows(database_url, "select count(*), count(distinct stream_id) from check_results") == [
        (4_000, 4_000)
    ]
    assert archived_rows("new") - new == 1_000  # lane 1's half, on the retry
    assert archived_rows("duplicate") - duplicate == 1_000  # lane 0's, already committed
    assert await archiver.roll_up() == 4  # 10:30 to 13:50
    assert rows(database_url, "select sum(executions) from check_rollups") == [(4_000,)]
