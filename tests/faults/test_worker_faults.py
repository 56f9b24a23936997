"""Fault 1: ``kill -9`` of each worker kind mid-batch, then a restart.

Twenty HTTP checks flap together (the target alternates healthy/unhealthy), so every
worker kind has work in flight when it is killed. Afterwards the streams, the archive and
the receiver are compared: every check result archived exactly once, every alert
transition archived once and notified once per channel.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from redis import Redis

from shared.streams import StreamNames
from tests.faults.harness import (
    ROLES,
    Receiver,
    Workers,
    alert_states,
    archived_ids,
    duplicates,
    iter_stream,
    poll,
    soak,
    stream_ids,
)
from tests.support.http import HttpStub

CHECKS = 20


def flapping_config(target: str, receiver: str, checks: int = CHECKS) -> str:
    lines = ["tenants: [{id: acme}]", "checks:"]
    lines += [
        f"  - {{name: c{i}, type: http, tenant: acme, service: s{i}, tier: critical,"
        f' url: "{target}/c{i}", interval: 200ms, timeout: 1s}}'
        for i in range(checks)
    ]
    lines += [
        "rules:",
        "  - {name: down, type: consecutive, failures: 2, successes: 2}",
        "channels:",
        f'  - {{name: a, type: webhook, url: "{receiver}/a", backoff: 50ms, timeout: 2s}}',
        f'  - {{name: b, type: webhook, url: "{receiver}/b", backoff: 50ms, timeout: 2s}}',
        "routes:",
        "  - channels: [a, b]",
    ]
    return "\n".join(lines) + "\n"


class Flapper:
    """Turns the target unhealthy and healthy again every ``period`` seconds."""

    def __init__(self, target: HttpStub, period: float) -> None:
        self.target, self.period = target, period
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.period):
            self.target.status = 503 if self.target.status == 200 else 200

    def __enter__(self) -> Flapper:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.target.status = 200


def test_kill_9_of_each_worker_loses_and_duplicates_nothing(
    tmp_path: Path, redis_server_url: str, database_url: str
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(redis_server_url)
    rounds = 3 if soak() else 1
    in_flight_at_kill: set[str] = set()  # unacknowledged by the notifier when killed
    with HttpStub() as target, Receiver(delay=0.1) as receiver:
        config = flapping_config(target.url, receiver.url)
        with Workers(tmp_path, config, redis_server_url, database_url, names.prefix) as workers:
            workers.start()
            poll(lambda: len(receiver.hits) == 0 and len(target.requests) > CHECKS, 30, "probing")
            with Flapper(target, period=1.0):
                for _ in range(rounds):
                    for role in ROLES:
                        in_flight_at_kill |= kill_mid_batch(workers, role, receiver, redis, names)
                        time.sleep(0.5)  # work piles up for the dead worker
                        workers.start(role)
                        time.sleep(1.0)
            # Healthy again: every alert resolves; then no more results are produced.
            time.sleep(2.0)
            workers.stop_role("probe")
            streams = [names.results, names.alerts, names.deliveries]
            workers.settle(redis, streams, 60)
            assert workers.alive() == {r: None for r in ROLES if r != "probe"}
        report(redis, names, database_url, receiver, in_flight_at_kill)


def kill_mid_batch(
    workers: Workers, role: str, receiver: Receiver, redis: Redis, names: StreamNames
) -> set[str]:
    """Kill ``role`` while it has work in flight; for the notifier, the event ids of the
    batch it had read and not acknowledged (the only ones it may send again after the
    restart: it marks a channel sent only when the whole batch is done)."""
    if role == "notifier":
        before = len(receiver.hits)
        poll(lambda: len(receiver.hits) > before, 30, "a delivery in flight")
        killed = time.monotonic()
        workers.kill9(role)
        pending: Any = redis.xpending_range(names.alerts, "notifier", "-", "+", 100_000)
        unacked = {p["message_id"] for p in pending}
        # Also what reached the receiver from a second before the kill until the restart
        # (requests the dead process had sent arrive late on a loaded machine).
        time.sleep(0.5)
        late = {hit_event_id(h.body) for h in receiver.hits if h.at > killed - 1.0}
        return late | {
            json.loads(fields[b"data"])["event_id"]
            for entry, fields in iter_stream(redis, names.alerts)
            if entry in unacked
        }
    # Results flowing: the probe is publishing, the evaluator and archiver consuming.
    before = stream_length(redis, names.results)
    poll(lambda: stream_length(redis, names.results) > before + 10, 30, f"{role} busy")
    workers.kill9(role)
    return set()


def stream_length(redis: Redis, stream: str) -> int:
    return int(redis.xlen(stream))  # type: ignore[arg-type]


def hit_event_id(body: bytes) -> str:
    return str(json.loads(body)["event_id"])


def report(
    redis: Redis, names: StreamNames, database_url: str, receiver: Receiver, in_flight: set[str]
) -> None:
    results = stream_ids(redis, names.results)
    archived = archived_ids(database_url, "check_results")
    assert duplicates(results) == {}, "a check result was published twice"
    assert sorted(archived) == sorted(results), "archive differs from the results stream"

    alerts = stream_ids(redis, names.alerts)
    assert duplicates(alerts) == {}, "an alert transition was published twice"
    assert sorted(archived_ids(database_url, "alert_events")) == sorted(alerts)
    for fingerprint, states in alert_states(redis, names).items():
        # firing, resolved, firing, ...: no transition repeated or skipped by a restart
        assert all(a != b for a, b in itertools.pairwise(states)), fingerprint
        assert states[0] == "firing", fingerprint
    for channel in ("/a", "/b"):
        got = receiver.delivered_ids(channel)
        assert set(got) == set(alerts), f"{channel}: missing {set(alerts) - set(got)}"
        assert set(duplicates(got)) <= in_flight, f"{channel}: duplicated {duplicates(got)}"
    print(
        f"\nfault 1: {len(results)} results archived once each; {len(alerts)} alert transitions"
        f" ({len(alert_states(redis, names))} alerts), each archived once and delivered to"
        f" both channels; re-sent from the batch unacknowledged at the kill:"
        f" {sum(len(duplicates(receiver.delivered_ids(c))) for c in ('/a', '/b'))}"
    )
