"""Alert lifecycle: the transition rule, its audit trail in PostgreSQL, and the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import AlertEvent
from services.archiver import lifecycle
from services.archiver.store import ALERTS, write
from shared.errors import AlertActionError
from shared.streams import StreamNames
from tests.test_archiver import alert, rows

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("active", "acknowledged", True),
        ("active", "resolved", True),
        ("active", "suppressed", True),
        ("active", "expired", True),
        ("acknowledged", "resolved", True),
        ("acknowledged", "suppressed", True),
        ("suppressed", "active", True),
        ("suppressed", "acknowledged", True),
        ("acknowledged", "acknowledged", False),
        ("acknowledged", "active", False),
        ("resolved", "acknowledged", False),
        ("resolved", "active", False),
        ("expired", "resolved", False),
    ],
)
def test_next_state(current: str, target: str, allowed: bool) -> None:
    if allowed:
        assert lifecycle.next_state(current, target) == target
    else:
        with pytest.raises(AlertActionError, match=f"from {current} to {target}"):
            lifecycle.next_state(current, target)


async def open_alert(conn: AsyncConnection, started: datetime = T0, fp: str = "fp1") -> int:
    event = msgspec.structs.replace(alert("firing", started), fingerprint=fp)
    await write(
        conn,
        ALERTS,
        [(f"{fp}-{started.timestamp()}".encode(), event)],
        today=T0.date(),
        retention_days=30,
    )
    cur = await conn.execute("select id from alerts where fingerprint = %s", (fp,))
    return int((await cur.fetchone())[0])  # type: ignore[index]


async def test_ack_then_resolve_records_who_when_and_why(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id = await open_alert(conn)
        acked = await lifecycle.acknowledge(
            conn, alert_id, by="alice", note="looking", now=T0 + timedelta(minutes=3)
        )
        assert (acked.state, acked.acknowledged_by) == ("acknowledged", "alice")
        with pytest.raises(AlertActionError):
            await lifecycle.acknowledge(conn, alert_id, by="bob", now=T0 + timedelta(minutes=4))
        done = await lifecycle.resolve(
            conn, alert_id, by="bob", note="rolled back", now=T0 + timedelta(minutes=10)
        )
        assert (done.state, done.resolved_by, done.resolved_at) == (
            "resolved",
            "bob",
            T0 + timedelta(minutes=10),
        )
        with pytest.raises(AlertActionError, match="no alert with id 999"):
            await lifecycle.resolve(conn, 999, by="bob", now=T0)
    assert rows(
        database_url,
        "select from_state, to_state, at, by, note from alert_transitions order by id",
    ) == [
        (None, "active", T0, "rule:down", "firing message"),
        ("active", "acknowledged", T0 + timedelta(minutes=3), "alice", "looking"),
        ("acknowledged", "resolved", T0 + timedelta(minutes=10), "bob", "rolled back"),
    ]
    assert rows(database_url, "select actor, action, target, details->>'note' from audit_log") == [
        ("alice", "acknowledged", f"alert:{alert_id}", "looking"),
        ("bob", "resolved", f"alert:{alert_id}", "rolled back"),
    ]


async def test_an_ack_that_cannot_be_published_changes_nothing(database_url: str) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id = await open_alert(conn)
        publish = lifecycle.stream_publisher(down, StreamNames("t"))
        with pytest.raises(AlertActionError, match="cannot publish the acknowledgement"):
            await lifecycle.acknowledge(conn, alert_id, by="alice", now=T0, publish=publish)
        assert (await lifecycle.get(conn, alert_id)).state == "active"
    await down.aclose()


async def test_archived_acknowledged_events_leave_the_lifecycle_alone(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id = await open_alert(conn)
        acked = msgspec.structs.replace(
            alert("firing", T0), state="acknowledged", acknowledged_by="alice"
        )
        unseen = msgspec.structs.replace(acked, fingerprint="unseen")
        await write(
            conn,
            ALERTS,
            [(b"ack-1", acked), (b"ack-2", unseen)],
            today=T0.date(),
            retention_days=30,
        )
        assert (await lifecycle.get(conn, alert_id)).state == "active"
    assert rows(database_url, "select fingerprint, state from alerts") == [("fp1", "active")]
    assert rows(database_url, "select state from alert_events order by stream_id") == [
        ("acknowledged",),
        ("acknowledged",),
        ("firing",),
    ]


async def test_suppression_ends_on_time_and_silent_alerts_expire(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        quiet = await open_alert(conn, fp="quiet")
        noisy = await open_alert(conn, started=T0 + timedelta(hours=5), fp="noisy")
        until = T0 + timedelta(hours=6)
        with pytest.raises(AlertActionError, match="future"):
            await lifecycle.suppress(conn, noisy, by="carol", until=T0, now=T0 + timedelta(hours=5))
        await lifecycle.suppress(
            conn, noisy, by="carol", until=until, note="deploy", now=T0 + timedelta(hours=5)
        )
        ttl = timedelta(hours=4)
        assert await lifecycle.housekeep(conn, T0 + timedelta(hours=5, minutes=1), ttl) == {
            "unsuppressed": 0,
            "expired": 1,  # quiet: no news for 4 h
        }
        assert await lifecycle.housekeep(conn, until, ttl) == {"unsuppressed": 1, "expired": 0}
        assert (await lifecycle.get(conn, quiet)).state == "expired"
        assert (await lifecycle.get(conn, noisy)).state == "active"
    assert rows(
        database_url,
        "select a.fingerprint, t.from_state, t.to_state, t.by from alert_transitions t "
        "join alerts a on a.id = t.alert_id where t.from_state is not null order by t.id",
    ) == [
        ("noisy", "active", "suppressed", "carol"),
        ("quiet", "active", "expired", "system"),
        ("noisy", "suppressed", "active", "system"),
    ]


async def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env)


async def test_alerts_cli_acknowledges_and_refuses_bad_moves(
    database_url: str, redis: Redis, redis_server_url: str, names: StreamNames
) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        alert_id = await open_alert(conn)
        await conn.commit()
    vigil = [sys.executable, "-c", "from shared.cli import main; main()"]
    env = {
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_REDIS_URL": redis_server_url,
        "VIGIL_STREAM_PREFIX": names.prefix,
        "VIGIL_OPS_PORT": "0",
        "PATH": "/usr/bin:/bin",
    }
    ack = [*vigil, "alerts", "ack", str(alert_id), "--by", "dave", "--note", "on it"]
    out = await run(ack, env)
    assert out.returncode == 0, out.stderr
    assert f"alert {alert_id} (web is failing) is acknowledged" in out.stdout
    # The acknowledgement also went to the alerts stream, for the notifier's channels.
    [(_, fields)] = await redis.xrange(names.alerts)
    event = msgspec.json.decode(fields[b"data"], type=AlertEvent)
    assert (event.state, event.fingerprint, event.acknowledged_by) == (
        "acknowledged",
        "fp1",
        "dave",
    )
    assert event.message == "Acknowledged by dave: on it"
    out = await run(ack, env)
    assert out.returncode == 2
    assert "cannot move an alert from acknowledged to acknowledged" in out.stderr
    suppress = [*vigil, "alerts", "suppress", str(alert_id), "--by", "dave", "--until", "2h"]
    out = await run(suppress, env)
    assert out.returncode == 0 and "is suppressed until" in out.stdout, out.stderr
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select acknowledged_by, state from alerts").fetchall() == [
            ("dave", "suppressed")
        ]
