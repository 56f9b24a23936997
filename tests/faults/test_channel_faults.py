"""Fault 4: notification targets that fail (500, 429, hang, close the connection).

Alert events go onto the alerts stream; a notifier and an archiver process run. Every
failing channel gets its attempts with growing back-off, then the alert is dead-lettered
once per failing channel; the healthy channel gets every alert exactly once, and keeps
getting new ones while the failing channels are still retrying.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import ANY

import psycopg
from redis import Redis

from schemas import AlertEvent
from shared.streams import StreamNames, encode
from tests.faults.harness import Receiver, Workers, iter_stream

FAILING = ("500", "429", "hang", "close")
ATTEMPTS = 3
BACKOFF = 0.2
TIMEOUT = 0.5


def channels_config(receiver: str) -> str:
    lines = ["tenants: [{id: acme}]", "channels:"]
    # The healthy channel keeps the default timeout: a busy machine is not a failing target.
    lines.append(f'  - {{name: ok, type: webhook, url: "{receiver}/ok"}}')
    lines += [
        f'  - {{name: "{name}", type: webhook, url: "{receiver}/{name}", max_attempts: {ATTEMPTS},'
        f" backoff: {int(BACKOFF * 1000)}ms, timeout: {int(TIMEOUT * 1000)}ms}}"
        for name in FAILING
    ]
    lines += ["routes:", f"  - channels: [ok, {', '.join(repr(m) for m in FAILING)}]"]
    return "\n".join(lines) + "\n"


def alert(i: int) -> AlertEvent:
    return AlertEvent(
        fingerprint=f"fp{i}",
        rule="down",
        tenant="acme",
        service=f"s{i}",
        severity="critical",
        state="firing",
        title=f"s{i} is down",
        started_at=datetime.now(UTC),
    )


def test_failing_targets_are_retried_then_dead_lettered_and_others_keep_flowing(
    tmp_path: Path, redis_server_url: str, database_url: str
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(redis_server_url)
    modes = {f"/{m}": m for m in FAILING}
    with (
        Receiver(modes=modes) as receiver,
        Workers(
            tmp_path, channels_config(receiver.url), redis_server_url, database_url, names.prefix
        ) as workers,
    ):
        workers.start("notifier", "archiver")
        first = [alert(i) for i in range(10)]
        for event in first:
            redis.xadd(names.alerts, encode(event))
        workers.poll(
            lambda: len(receiver.delivered_ids("/ok")) == 10, 30, "the first wave delivered"
        )
        # A second wave while the failing channels still retry the first one.
        published = time.monotonic()
        second = [alert(i) for i in range(10, 20)]
        for event in second:
            redis.xadd(names.alerts, encode(event))
        workers.poll(
            lambda: len(receiver.delivered_ids("/ok")) == 20, 30, "the second wave delivered"
        )
        second_wave_s = time.monotonic() - published
        streams = [names.alerts, names.deliveries]
        workers.settle(redis, streams, 60)
        assert workers.alive() == {"notifier": None, "archiver": None}

    events = {e.event_id for e in first + second}
    assert receiver.delivered_ids("/ok") == dict.fromkeys(events, 1)
    attempts = delivery_attempts(database_url)
    for mode in FAILING:
        # At most one request per attempt reaches the target (an attempt on a pooled
        # connection the target had closed fails before it arrives).
        hits = Counter(event_of(h.body) for h in receiver.hits if h.path == f"/{mode}")
        assert set(hits) == events and max(hits.values()) <= ATTEMPTS, (mode, hits)
        for event in events:
            records = attempts[(event, mode)]
            assert [(n, outcome) for n, outcome, _ in records] == [
                (1, "retrying"),
                (2, "retrying"),
                (3, "failed"),
            ], (mode, records)
            waits = [b[2] - a[2] for a, b in itertools.pairwise(records)]
            # Each wait is at least the jittered back-off (x0.5) after its attempt.
            assert waits[0] >= BACKOFF * 0.5 and waits[1] >= BACKOFF * 2 * 0.5, (mode, waits)
    dead = [f for _, f in iter_stream(redis, names.deadletter)]
    dead_pairs = sorted((f[b"channel"].decode(), event_of(f[b"data"])) for f in dead)
    assert dead_pairs == sorted(itertools.product(FAILING, events))
    assert all(b"failed after 3 attempt(s)" in f[b"dlq:reason"] for f in dead)
    assert [attempts[(e, "ok")] for e in events] == [[(1, "delivered", ANY)]] * 20
    print(
        f"\nfault 4: 20 alerts x 5 channels; ok: 20 delivered once each; each failing channel:"
        f" {ATTEMPTS} attempts per alert then dead-lettered ({len(dead)} dead letters);"
        f" second wave reached the healthy channel in {second_wave_s:.2f}s"
    )


def event_of(data: bytes) -> str:
    return str(json.loads(data)["event_id"])


def delivery_attempts(database_url: str) -> dict[tuple[str, str], list[tuple[int, str, float]]]:
    """Archived delivery records: (attempt, outcome, epoch seconds) per (event, channel)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select alert_event_id, channel, attempt, outcome, extract(epoch from at)"
            " from deliveries order by at"
        ).fetchall()
    out: dict[tuple[str, str], list[tuple[int, str, float]]] = defaultdict(list)
    for event, channel, attempt, outcome, at in rows:
        out[(event, channel)].append((attempt, outcome, float(at)))
    return out
