"""Faults 2 and 3: Redis restarted (AOF) and PostgreSQL stopped, under a running pipeline.

Each test runs all four workers against servers of its own (a restart must not hit the
session's shared servers), with checks flapping so that results, alerts and deliveries
flow throughout. Afterwards everything published is archived once, every alert was
delivered, and each check's history has no hole longer than a few intervals.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from services.archiver.migrate import upgrade
from shared.localservers import LocalPostgres, LocalRedis
from shared.streams import StreamNames
from tests.faults.harness import (
    Receiver,
    Workers,
    archived_ids,
    duplicates,
    soak,
    stream_ids,
)
from tests.faults.test_worker_faults import Flapper, flapping_config
from tests.support.http import HttpStub

CHECKS = 10
INTERVAL_S = 0.2
# PostgreSQL outage: 30 s in the soak (the figure), shorter by default (CI time).
PG_OUTAGE_S = float(os.environ.get("VIGIL_FAULT_PG_OUTAGE_S", "30" if soak() else "6"))


@pytest.fixture
def own_postgres(server_dir: Path) -> Iterator[LocalPostgres]:
    pg = LocalPostgres(server_dir / f"pg-{uuid.uuid4().hex[:6]}").start()
    upgrade(pg.url)
    yield pg
    pg.stop()


def fast_stop(pg: LocalPostgres) -> None:
    """SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave."""
    assert pg.proc is not None
    pg.proc.send_signal(signal.SIGINT)
    pg.proc.wait(timeout=30)
    pg.proc = None


def archiver_backlog(redis: Redis, stream: str) -> int:
    """Entries the archiver has not acknowledged: pending plus not yet read."""
    for group in redis.xinfo_groups(stream):  # type: ignore[union-attr]
        if group["name"] == b"archiver":
            return int(group["pending"]) + int(group["lag"] or 0)
    return 0


def test_postgres_outage_pauses_archiving_and_the_backlog_drains_without_gaps(
    tmp_path: Path, redis_server_url: str, own_postgres: LocalPostgres
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(redis_server_url)
    with HttpStub() as target, Receiver() as receiver:
        config = flapping_config(target.url, receiver.url, CHECKS)
        with (
            Workers(tmp_path, config, redis_server_url, own_postgres.url, names.prefix) as workers,
            Flapper(target, period=1.0),
        ):
            workers.start()
            workers.wait_ready(redis, names)
            workers.poll(
                lambda: len(archived_ids(own_postgres.url, "check_results")) > CHECKS,
                30,
                "archiving",
            )
            fast_stop(own_postgres)
            stopped = time.monotonic()
            time.sleep(PG_OUTAGE_S)
            backlog = archiver_backlog(redis, names.results)
            assert backlog > PG_OUTAGE_S / INTERVAL_S * CHECKS / 2, backlog  # it grew
            assert not redis.exists(names.deadletter)
            own_postgres.start()
            outage_s = time.monotonic() - stopped
            workers.poll(lambda: archiver_backlog(redis, names.results) < CHECKS, 60, "draining")
            drained_s = time.monotonic() - stopped - outage_s
            workers.stop_role("probe")
            streams = [names.results, names.alerts, names.deliveries]
            workers.settle(redis, streams, 60)
    counts = nothing_lost(redis, names, own_postgres.url, receiver)
    gap = largest_gap_s(own_postgres.url)
    assert gap < 5 * INTERVAL_S + 1.0, gap
    print(
        f"\nfault 3: PostgreSQL down {outage_s:.1f}s; archiver backlog grew to {backlog}"
        f" results, drained {drained_s:.1f}s after the restart; {counts}; largest gap in"
        f" a check's history {gap:.2f}s (interval {INTERVAL_S}s); 0 dead letters"
    )


def nothing_lost(redis: Redis, names: StreamNames, database_url: str, receiver: Receiver) -> str:
    """Everything published archived exactly once, every alert delivered; a summary."""
    results = stream_ids(redis, names.results)
    assert duplicates(results) == {}
    assert sorted(archived_ids(database_url, "check_results")) == sorted(results)
    alerts = stream_ids(redis, names.alerts)
    assert duplicates(alerts) == {}
    assert sorted(archived_ids(database_url, "alert_events")) == sorted(alerts)
    deliveries = stream_ids(redis, names.deliveries)
    assert sorted(archived_ids(database_url, "deliveries")) == sorted(deliveries)
    for channel in ("/a", "/b"):
        assert set(receiver.delivered_ids(channel)) == set(alerts), channel
    assert not redis.exists(names.deadletter)
    return (
        f"{len(results)} results, {len(alerts)} alert transitions and {len(deliveries)}"
        f" delivery records archived exactly once"
    )


def largest_gap_s(database_url: str) -> float:
    """The longest time between two consecutive archived results of one check."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select check_name, extract(epoch from observed_at) from check_results"
            " order by check_name, observed_at"
        ).fetchall()
    gaps = [
        float(b[1]) - float(a[1])
        for _, series in itertools.groupby(rows, key=lambda r: r[0])
        for a, b in itertools.pairwise(list(series))
    ]
    return max(gaps)


@pytest.fixture
def own_redis(server_dir: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(server_dir / f"redis-{uuid.uuid4().hex[:6]}", aof=True).start()
    yield server
    server.stop()


def test_redis_restart_with_aof_loses_and_duplicates_nothing(
    tmp_path: Path, own_redis: LocalRedis, database_url: str
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(own_redis.url)
    down_s = 6.0 if soak() else 2.0
    with HttpStub() as target, Receiver() as receiver:
        config = flapping_config(target.url, receiver.url, CHECKS)
        with (
            Workers(tmp_path, config, own_redis.url, database_url, names.prefix) as workers,
            Flapper(target, period=1.0),
        ):
            workers.start()
            workers.wait_ready(redis, names)
            workers.poll(lambda: len(receiver.hits) >= CHECKS, 30, "alerts delivered")
            before = len(stream_ids(redis, names.results))
            own_redis.stop()  # SIGTERM: Redis writes its AOF and exits
            probed = len(target.requests)
            time.sleep(down_s)
            probed_while_down = len(target.requests) - probed
            # Checks go on by the probe's own clock; results wait in its buffer.
            assert probed_while_down >= CHECKS * (down_s / INTERVAL_S) / 2, probed_while_down
            own_redis.start()
            redis = Redis.from_url(own_redis.url)
            # The probe's buffered results arrive, the consumers resume.
            workers.poll(
                lambda: stream_length(redis, names.results) > before + probed_while_down,
                30,
                "buffered results published",
            )
            delivered, restarted = len(receiver.hits), time.monotonic()
            workers.poll(lambda: len(receiver.hits) > delivered + CHECKS, 60, "alerts flowing")
            resumed_s = time.monotonic() - restarted
            # Consumers reconnect after FastStream's 5 s back-off; the evaluator does not
            # wait for a batch that failed with the connection (it waited 30 s).
            assert resumed_s < 20, resumed_s
            workers.stop_role("probe")
            streams = [names.results, names.alerts, names.deliveries]
            workers.settle(redis, streams, 60)
    counts = nothing_lost(redis, names, database_url, receiver)
    gap = largest_gap_s(database_url)
    assert gap < 5 * INTERVAL_S + 1.0, gap  # no hole for the outage
    print(
        f"\nfault 2: Redis down {down_s:.0f}s (AOF); {probed_while_down} checks ran meanwhile,"
        f" their results buffered and published after; alerts flowing again {resumed_s:.1f}s"
        f" after the restart; {counts}; largest gap in a check's history {gap:.2f}s"
    )


def stream_length(redis: Redis, stream: str) -> int:
    return int(redis.xlen(stream))  # type: ignore[arg-type]


def test_redis_restarted_without_its_data_groups_are_recreated_and_work_resumes(
    tmp_path: Path, own_redis: LocalRedis, database_url: str
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(own_redis.url)
    with HttpStub() as target, Receiver() as receiver:
        config = flapping_config(target.url, receiver.url, CHECKS)
        with (
            Workers(tmp_path, config, own_redis.url, database_url, names.prefix) as workers,
            Flapper(target, period=1.0),
        ):
            workers.start()
            workers.wait_ready(redis, names)
            workers.poll(lambda: len(receiver.hits) >= CHECKS, 30, "alerts delivered")
            own_redis.stop()
            for path in own_redis.directory.iterdir():  # the data is lost
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            own_redis.start()
            redis = Redis.from_url(own_redis.url)
            delivered = len(receiver.hits)
            # New results are evaluated, notified and archived: every group is back.
            workers.poll(lambda: len(receiver.hits) > delivered + 2 * CHECKS, 60, "alerts again")
            workers.stop_role("probe")
            streams = [names.results, names.alerts, names.deliveries]
            workers.settle(redis, streams, 60)
    groups = {s: {g["name"] for g in redis.xinfo_groups(s)} for s in streams}  # type: ignore[union-attr]
    assert groups[names.results] >= {b"evaluator", b"archiver"}
    assert groups[names.alerts] == {b"notifier", b"archiver"}
    results = stream_ids(redis, names.results)
    assert set(results) <= set(archived_ids(database_url, "check_results"))
    alerts = stream_ids(redis, names.alerts)
    for channel in ("/a", "/b"):
        assert set(alerts) <= set(receiver.delivered_ids(channel)), channel
    print(
        f"\nfault 2b: Redis restarted empty; groups re-created; {len(results)} results and"
        f" {len(alerts)} alert transitions since, all archived and delivered"
    )
