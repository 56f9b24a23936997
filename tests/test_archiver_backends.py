"""The archiver's behaviour on both stores, PostgreSQL and the embedded SQLite:
the same tests, parametrised over the URL (``store_url`` in conftest)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult
from services.archiver import lifecycle
from services.archiver.history import History, open_history
from services.archiver.service import Archiver
from services.archiver.settings import ArchiveConfig
from shared.errors import AlertActionError
from shared.streams import Codec, StreamNames
from tests.test_archiver import alert, result

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)


def count(url: str, query: str) -> Any:
    """One value, read straight from the store (not through the code under test)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(query).fetchone()[0]
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]  # type: ignore[arg-type,index]


@pytest.fixture
async def history(store_url: str) -> AsyncIterator[History]:
    async with open_history(store_url) as h:
        yield h


def results(hour: datetime, up: int, down: int, check: str = "web", service: str = "shop") -> Any:
    """``up`` healthy then ``down`` unhealthy results of one check, a second apart."""
    return [
        (
            f"{hour.timestamp():.0f}{check}{service}-{i}".encode(),
            msgspec.structs.replace(
                result(1, hour + timedelta(seconds=i), "healthy" if i < up else "unhealthy", check),
                service=service,
            ),
        )
        for i in range(up + down)
    ]


async def test_a_redelivered_batch_is_stored_and_counted_once(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    archiver = Archiver(store_url, names, clock=lambda: NOW)
    batch = results(NOW - H, 3, 1)
    write = archiver.writers[CheckResult]
    await write(batch, redis.pipeline())
    await write(batch + results(NOW - 2 * H, 1, 0), redis.pipeline())  # redelivered + one new
    assert await archiver.roll_up() == 2
    await archiver.close()
    assert count(store_url, "select count(*) from check_results") == 5
    async with open_history(store_url) as h:
        [web] = await h.uptime("check", timedelta(hours=24), NOW)
    assert (web.executions, web.successes, web.failures) == (5, 4, 1)


async def test_uptime_over_windows_by_hand(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    archiver = Archiver(store_url, names, ArchiveConfig(retention_days=60), clock=lambda: NOW)
    write = archiver.writers[CheckResult]
    for hour, up, down in ((NOW - 3 * H, 6, 0), (NOW - 2 * H, 5, 1), (NOW - 72 * H, 0, 6)):
        await write(results(hour, up, down), redis.pipeline())
    # the partial first day of a 7-day window comes from the hourly rollups
    await write(results(NOW - 7 * 24 * H + H, 4, 0, "e", "edge"), redis.pipeline())
    await write(results(NOW - 7 * 24 * H - H, 0, 4, "e", "edge"), redis.pipeline())
    await archiver.close()
    async with open_history(store_url) as h:
        day = {u.check: u.percent for u in await h.uptime("check", timedelta(hours=24), NOW)}
        week = {u.check: u.percent for u in await h.uptime("check", timedelta(days=7), NOW)}
        [shop] = await h.uptime("service", timedelta(days=7), NOW, service="shop")
    assert day == {"web": pytest.approx(100 * 11 / 12)}
    assert week == {"web": pytest.approx(100 * 11 / 18), "e": 100.0}
    assert (shop.service, shop.check, shop.executions) == ("shop", None, 18)


async def test_latency_percentiles(store_url: str, names: StreamNames, redis: Redis) -> None:
    archiver = Archiver(store_url, names, clock=lambda: NOW)
    items = [
        (f"{m + 1}-0".encode(), result(m + 1, NOW - H + timedelta(seconds=30 * m), "healthy"))
        for m in range(100)
    ]
    await archiver.writers[CheckResult](items, redis.pipeline())
    await archiver.close()
    async with open_history(store_url) as h:
        [point] = await h.latency("acme", "shop", "web", NOW - H, NOW)
    assert (point.at, point.count, point.mean_ms) == (NOW - H, 100, 50.5)
    assert point.p95_ms == pytest.approx(95, rel=0.19)


async def test_alert_lifecycle_audit_timeline_and_patterns(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    archiver = Archiver(store_url, names, clock=lambda: NOW)
    write = archiver.writers[AlertEvent]
    await write([(b"1-0", alert("firing", NOW - 3 * H))], redis.pipeline())
    await write([(b"1-0", alert("firing", NOW - 3 * H))], redis.pipeline())  # redelivered
    alert_id = count(store_url, "select id from alerts")
    async with open_history(store_url) as h:
        acked = await h.act(
            alert_id, "acknowledged", by="erin", note="seen", now=NOW - 3 * H + 10 * 60 * S
        )
        with pytest.raises(AlertActionError, match="from acknowledged to acknowledged"):
            await h.act(alert_id, "acknowledged", by="erin", now=NOW)
        with pytest.raises(AlertActionError, match="say who acts"):
            await h.act(alert_id, "resolved", by="", now=NOW)
        await write(
            [(b"2-0", alert("resolved", NOW - 3 * H, NOW - 2 * H))], redis.pipeline()
        )  # the rule resolves it
        entries = await h.timeline(NOW - 4 * H, NOW)
        assert await h.timeline(NOW - 4 * H, NOW, tenant="other") == []
        p = await h.patterns(NOW - 24 * H, NOW, tenant="acme")
    await archiver.close()
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "erin")
    assert [(e.from_state, e.to_state, e.by, e.note, e.at) for e in entries] == [
        (None, "active", "rule:down", "firing message", NOW - 3 * H),
        ("active", "acknowledged", "erin", "seen", NOW - 3 * H + 600 * S),
        ("acknowledged", "resolved", "rule:down", "resolved message", NOW - 2 * H),
    ]
    assert (p.total, p.peak_hour, p.mtta_s, p.mttr_s) == (1, 9, 600.0, 3600.0)
    assert count(store_url, "select count(*) from audit_log where action = 'acknowledged'") == 1


async def test_suppression_ends_and_silent_alerts_expire(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    clock = [NOW]
    config = ArchiveConfig(alert_ttl=3600)  # type: ignore[arg-type]
    archiver = Archiver(store_url, names, config, clock=lambda: clock[0])
    write = archiver.writers[AlertEvent]
    await write([(b"1-0", alert("firing", NOW))], redis.pipeline())
    quiet = msgspec.structs.replace(alert("firing", NOW), fingerprint="fp2")
    await write([(b"2-0", quiet)], redis.pipeline())
    async with open_history(store_url) as h:
        suppressed = await h.act(1, "suppressed", by="ops", now=NOW, until=NOW + 30 * 60 * S)
        assert suppressed.suppressed_until == NOW + 30 * 60 * S
        clock[0] = NOW + 40 * 60 * S
        await archiver.housekeep()
        assert count(store_url, "select state from alerts where id = 1") == "active"
        clock[0] = NOW + 2 * H
        await archiver.housekeep()
    await archiver.close()
    assert count(store_url, "select count(*) from alerts where state = 'expired'") == 2
    assert count(store_url, "select count(*) from alert_transitions where by = 'system'") == 3


async def test_prune_keeps_recent_rows_rollups_and_open_alerts(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    clock = [NOW]
    archiver = Archiver(store_url, names, ArchiveConfig(retention_days=3), clock=lambda: clock[0])
    await archiver.writers[CheckResult](
        results(NOW - 2 * 24 * H, 2, 0) + results(NOW, 1, 1), redis.pipeline()
    )
    await archiver.writers[AlertEvent](
        [(b"1-0", alert("firing", NOW - 2 * 24 * H))], redis.pipeline()
    )
    clock[0] = NOW + 2 * 24 * H  # the older day is now past 3 days, the newer is not
    plan, _ = await archiver.housekeep(dry_run=True)
    assert count(store_url, "select count(*) from check_results") == 4  # a dry run keeps all
    assert plan.lines()
    await archiver.housekeep()
    await archiver.close()
    assert count(store_url, "select count(*) from check_results") == 2
    # rolled up before the raw rows went, then the rollups kept their own 3 days
    assert count(store_url, "select sum(executions) from check_rollups") == 2
    assert count(store_url, "select count(*) from alerts") == 1  # open: never pruned
    assert count(store_url, "select count(*) from audit_log where action = 'prune'") == 1


async def test_commands_migrate_ack_and_uptime(
    store_url: str, names: StreamNames, redis: Redis, redis_server_url: str, stream_prefix: str
) -> None:
    vigil = [sys.executable, "-c", "from shared.cli import main; main()"]
    env = {
        "VIGIL_DATABASE_URL": store_url,
        "VIGIL_REDIS_URL": redis_server_url,  # an acknowledgement is also published
        "VIGIL_STREAM_PREFIX": stream_prefix,
        "VIGIL_OPS_PORT": "0",
        "PATH": "/usr/bin:/bin",
    }

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*vigil, *args]
        return await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, env=env
        )

    out = await run("migrate")
    assert out.returncode == 0 and "up to date" in out.stdout, out.stderr
    now = datetime.now(UTC)
    archiver = Archiver(store_url, names, clock=lambda: now)
    await archiver.writers[CheckResult](
        results(now - timedelta(minutes=30), 998, 2), redis.pipeline()
    )
    await archiver.writers[AlertEvent]([(b"1-0", alert("firing", now))], redis.pipeline())
    await archiver.close()
    out = await run("alerts", "ack", "1", "--by", "dave", "--note", "on it")
    assert out.returncode == 0 and "is acknowledged" in out.stdout, out.stderr
    out = await run("alerts", "ack", "1", "--by", "dave")
    assert out.returncode == 2 and "from acknowledged to acknowledged" in out.stderr
    out = await run("uptime", "--level", "check")
    assert out.returncode == 0, out.stderr
    # 99.8 % against 99.9 %: missed; 2 failures of a budget of 1: -100 % left
    assert out.stdout.splitlines()[1].split() == ["acme/shop/web", "99.800%", "MISS", "-100.0%"]


async def test_an_acknowledgement_is_published_and_its_event_changes_no_state(
    store_url: str, names: StreamNames, redis: Redis
) -> None:
    archiver = Archiver(store_url, names, clock=lambda: NOW)
    write = archiver.writers[AlertEvent]
    await write([(b"1-0", alert("firing", NOW - H))], redis.pipeline())
    alert_id = count(store_url, "select id from alerts")
    publish = lifecycle.stream_publisher(redis, names)
    async with open_history(store_url) as h:
        await h.act(alert_id, "acknowledged", by="erin", note="on it", now=NOW, publish=publish)
    entries = await redis.xrange(names.alerts)
    assert len(entries) == 1
    [(entry_id, event)], _ = Codec(AlertEvent).decode([entries[0][0]], [entries[0][1]])
    assert (event.state, event.acknowledged_by, event.labels) == ("acknowledged", "erin", {})
    # The archiver reads it back off the stream: the alert stays acknowledged, not resolved.
    await write([(entry_id, event)], redis.pipeline())
    await archiver.close()
    assert count(store_url, "select state from alerts") == "acknowledged"
