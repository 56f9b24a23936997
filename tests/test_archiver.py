"""The archiver's storage against a real PostgreSQL: partitioned, idempotent, derived tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult, MetricSample
from services.archiver.migrate import upgrade
from services.archiver.service import GROUP, Archiver
from shared.consumer import BatchProcessor
from shared.streams import StreamNames, encode, ensure_group

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def result(i: int, at: datetime, status: str | None = None, check: str = "web") -> CheckResult:
    return CheckResult(
        tenant="acme",
        service="shop",
        check=check,
        tier="core",
        status=status or ("healthy" if i % 2 else "unhealthy"),  # type: ignore[arg-type]
        latency_ms=float(i),
        observed_at=at,
        details={"i": i},
    )


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


async def test_a_redelivered_batch_is_archived_once_and_counted_once(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: NOW)
    results_consumer = archiver.consumers()[0]
    await ensure_group(redis, names.results, GROUP)
    for i in range(5):
        await redis.xadd(names.results, encode(result(i, NOW)))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.results: ">"})
    ids, fields = [i for i, _ in entries], [f for _, f in entries]
    process = BatchProcessor(redis, names, results_consumer, 5)
    await process(ids, fields)
    await process(ids, fields)  # redelivered after a crash before XACK
    assert await archiver.roll_up() == 1
    assert await archiver.roll_up() == 0  # nothing new: the hour is not recomputed again
    await archiver.close()
    archived = rows(
        database_url, "select stream_id, latency_ms, details from check_results order by 2"
    )
    assert archived == [(ids[i].decode(), float(i), {"i": i}) for i in range(5)]
    assert (await redis.xpending(names.results, GROUP))["pending"] == 0
    # the rollup saw each result once: statuses 0..4 alternate unhealthy/healthy
    assert rows(
        database_url,
        "select hour, executions, successes, failures, latency_sum, latency_min, latency_max "
        "from check_rollups",
    ) == [(NOW.replace(minute=0), 5, 2, 3, 10.0, 0.0, 4.0)]
    assert rows(database_url, "select relname from pg_class where relname like 'check_results_p%'")


async def test_rows_land_in_their_day_partition_and_rollups_split_by_hour(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: NOW)
    midnight = NOW.replace(hour=0, minute=0)
    items = [
        (b"1-0", result(1, midnight - timedelta(seconds=1))),  # yesterday, 23:00 hour
        (b"2-0", result(3, midnight)),
        (b"3-0", result(5, midnight + timedelta(minutes=59), status="unknown")),
        (b"4-0", result(7, midnight + timedelta(hours=1))),
    ]
    await archiver.writers[CheckResult](items, redis.pipeline())
    assert await archiver.roll_up() == 3
    await archiver.close()
    assert rows(
        database_url, "select tableoid::regclass::text, stream_id from check_results order by 2"
    ) == [
        ("check_results_p20261123", "1-0"),
        ("check_results_p20261124", "2-0"),
        ("check_results_p20261124", "3-0"),
        ("check_results_p20261124", "4-0"),
    ]
    assert rows(
        database_url,
        "select extract(hour from hour at time zone 'UTC')::int, executions, successes, failures "
        "from check_rollups order by hour",
    ) == [(23, 1, 1, 0), (0, 2, 1, 0), (1, 1, 1, 0)]


async def test_rows_older_than_retention_are_dropped_not_resurrecting_a_partition(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, retention_days=30, clock=lambda: NOW)
    items = [(b"1-0", result(1, NOW - timedelta(days=31))), (b"2-0", result(2, NOW))]
    await archiver.writers[CheckResult](items, redis.pipeline())
    await archiver.close()
    assert rows(database_url, "select stream_id from check_results") == [("2-0",)]
    assert rows(
        database_url, "select count(*) from pg_class where relname = 'check_results_p20261024'"
    ) == [(0,)]


async def test_metric_samples_are_consumed_and_partitioned(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: NOW)
    metrics = next(c for c in archiver.consumers() if c.stream == names.metrics)
    await ensure_group(redis, names.metrics, GROUP)
    sample = MetricSample(
        tenant="acme",
        service="shop",
        metric="queue_depth",
        value=42.0,
        observed_at=NOW,
        labels={"queue": "orders"},
    )
    entry = await redis.xadd(names.metrics, encode(sample))
    [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.metrics: ">"})
    process = BatchProcessor(redis, names, metrics, 5)
    await process([e for e, _ in entries], [f for _, f in entries])
    await process([e for e, _ in entries], [f for _, f in entries])
    await archiver.close()
    assert rows(
        database_url,
        "select tableoid::regclass::text, stream_id, metric, value, labels from metric_samples",
    ) == [("metric_samples_p20261124", entry.decode(), "queue_depth", 42.0, {"queue": "orders"})]


def alert(state: str, started: datetime, ended: datetime | None = None) -> AlertEvent:
    return AlertEvent(
        fingerprint="fp1",
        rule="down",
        tenant="acme",
        service="shop",
        severity="critical",
        state=state,  # type: ignore[arg-type]
        title="web is failing",
        message=f"{state} message",
        started_at=started,
        ended_at=ended,
    )


async def test_alert_events_open_and_resolve_one_alert_row_once(
    redis: Redis, names: StreamNames, database_url: str
) -> None:
    archiver = Archiver(database_url, names, clock=lambda: NOW)
    write = archiver.writers[AlertEvent]
    fired, resolved = alert("firing", NOW), alert("resolved", NOW, NOW + timedelta(minutes=5))
    await write([(b"1-0", fired)], redis.pipeline())
    await write([(b"1-0", fired), (b"2-0", resolved)], redis.pipeline())  # redelivered + new
    await write([(b"2-0", resolved)], redis.pipeline())
    await archiver.close()
    assert rows(
        database_url, "select fingerprint, state, resolved_at, resolved_by from alerts"
    ) == [("fp1", "resolved", NOW + timedelta(minutes=5), "rule:down")]
    assert rows(
        database_url, "select from_state, to_state, by, note from alert_transitions order by id"
    ) == [
        (None, "active", "rule:down", "firing message"),
        ("active", "resolved", "rule:down", "resolved message"),
    ]
    assert rows(database_url, "select count(*) from alert_events") == [(2,)]


async def test_migration_moves_existing_history_into_day_partitions(
    postgres_server_url: str,
) -> None:
    admin = postgres_server_url.rsplit("/", 1)[0] + "/postgres"
    name = f"mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url, "0001")
    with psycopg.connect(url) as conn:
        for sid, day in (("1-0", 1), ("2-0", 1), ("3-0", 2)):
            conn.execute(
                "insert into check_results (stream_id, event_id, tenant, service, check_name, "
                "tier, status, latency_ms, observed_at) "
                "values (%s, 'e', 'acme', 'shop', 'web', 'core', 'healthy', 1, %s)",
                (sid, datetime(2026, 10, day, 12, tzinfo=UTC)),
            )
    upgrade(url)
    assert rows(
        url, "select tableoid::regclass::text, stream_id from check_results order by 2"
    ) == [
        ("check_results_p20261001", "1-0"),
        ("check_results_p20261001", "2-0"),
        ("check_results_p20261002", "3-0"),
    ]
    assert rows(url, "select count(*) from pg_class where relname = 'check_results_unpartitioned'")[
        0
    ] == (0,)
