"""Fault 5: a slow consumer under a 10x burst.

The notifier's target answers slowly, so the notifier is the slow consumer of the alerts
stream; the archiver reads the same stream fast and trims it to a one-second replay
window every 300 ms. A burst of ten times the normal rate arrives at once. The notifier
reads a batch at a time (the backlog waits in Redis: backpressure), its memory stays
bounded far below the burst's size, trimming never removes an entry the notifier has not
acknowledged, and every alert is delivered exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from schemas import AlertEvent
from services.archiver import trim
from shared.streams import StreamNames, encode, ensure_group
from tests.faults.harness import Receiver, Workers, behind, iter_stream, soak

NORMAL = 100  # alerts per second
BURST = 10 * NORMAL
BODY = 8 * 1024  # each alert carries 8 KiB of text: the burst weighs BURST_S x 8 MiB
BURST_S = 6 if soak() else 3


def config(receiver: str) -> str:
    return (
        "tenants: [{id: acme}]\n"
        f'channels: [{{name: slow, type: webhook, url: "{receiver}/slow"}}]\n'
        "routes: [{channels: [slow]}]\n"
        "archive: {replay_window: 1s, prune_every: 300ms}\n"
    )


def alert(i: int) -> AlertEvent:
    return AlertEvent(
        fingerprint=f"fp{i}",
        rule="down",
        tenant="acme",
        service=f"s{i % 50}",
        severity="warning",
        state="firing",
        title=f"alert {i}",
        message="x" * BODY,
        started_at=datetime.now(UTC),
    )


def publish(redis: Redis, names: StreamNames, start: int, count: int) -> list[str]:
    pipe = redis.pipeline(transaction=False)
    events = [alert(i) for i in range(start, start + count)]
    for event in events:
        pipe.xadd(names.alerts, encode(event))
    pipe.execute()
    return [e.event_id for e in events]


class Watch:
    """Samples the notifier's memory and backlog, and checks trimming, until stopped."""

    def __init__(self, workers: Workers, redis: Redis, names: StreamNames) -> None:
        self.workers, self.redis, self.names = workers, redis, names
        self.rss_kib: list[int] = []
        self.backlog: list[int] = []
        self.violations: list[str] = []
        self.first: list[tuple[int, int]] = []  # the stream's oldest entry, per sample
        self.trims_under_backlog = 0  # samples where trimming ran while the notifier lagged
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(0.05):
            self.rss_kib.append(self.workers.rss_kib("notifier"))
            self._check_trim()

    def _check_trim(self) -> None:
        """Every entry the notifier still needs is in the stream."""
        groups = {g["name"]: g for g in self.redis.xinfo_groups(self.names.alerts)}  # type: ignore[union-attr]
        notifier = groups[b"notifier"]
        pending = self.redis.xpending(self.names.alerts, "notifier")
        needed = pending["min"] if pending["pending"] else None
        self.backlog.append(int(notifier["pending"]) + int(notifier["lag"] or 0))
        first: list[tuple[bytes, object]] = self.redis.xrange(self.names.alerts, count=1)  # type: ignore[assignment]
        if not first:
            return
        oldest = _id(first[0][0])
        if needed is not None and oldest > _id(needed):
            self.violations.append(f"trimmed {needed!r}, still pending")
        if self.first and oldest > self.first[-1] and self.backlog[-1] > 0:
            self.trims_under_backlog += 1
        self.first.append(oldest)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()


def _id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq)


def test_slow_consumer_under_a_10x_burst_keeps_memory_bounded_and_loses_nothing(
    tmp_path: Path, redis_server_url: str, database_url: str
) -> None:
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(redis_server_url)
    with (
        Receiver(delay=0.1) as receiver,
        Workers(
            tmp_path,
            config(receiver.url),
            redis_server_url,
            database_url,
            names.prefix,
            extra_env={"VIGIL_BATCH_SIZE": "100"},
        ) as workers,
    ):
        workers.start("notifier", "archiver")
        sent = publish(redis, names, 0, NORMAL)  # a second's worth at the normal rate
        workers.poll(lambda: len(receiver.hits) == NORMAL, 30, "the normal load")
        baseline = workers.rss_kib("notifier")
        with Watch(workers, redis, names) as watch:
            started = time.monotonic()
            for second in range(BURST_S):
                sent += publish(redis, names, NORMAL + second * BURST, BURST)
                time.sleep(max(0.0, started + second + 1 - time.monotonic()))
            try:
                workers.poll(lambda: len(receiver.hits) >= len(sent), 120, "the burst delivered")
            except AssertionError as exc:
                dead = [f.get(b"dlq:reason") for _, f in iter_stream(redis, names.deadletter)]
                raise AssertionError(
                    f"{exc}: {len(receiver.hits)} of {len(sent)} received;"
                    f" {behind(redis, [names.alerts])}; dead letters {Counter(dead)}"
                ) from None
            drained_s = time.monotonic() - started
            workers.settle(redis, [names.alerts], 30)
            # The replay window has passed: the archiver's trimming empties the stream.
            workers.poll(lambda: int(redis.xlen(names.alerts)) < len(sent) // 10, 30, "trimmed")  # type: ignore[arg-type]
    delivered = receiver.delivered_ids("/slow")
    assert sorted(delivered) == sorted(sent) and set(delivered.values()) == {1}
    assert watch.violations == []
    assert watch.trims_under_backlog > 0  # trimming did run while the notifier lagged
    peak = max(watch.rss_kib)
    burst_kib = BURST_S * BURST * BODY // 1024
    # A batch at a time is in memory, not the backlog.
    assert peak - baseline < burst_kib // 4, (baseline, peak, burst_kib)
    print(
        f"\nfault 5: {len(sent)} alerts ({BURST}/s for {BURST_S}s after {NORMAL}/s), "
        f"{burst_kib // 1024} MiB of burst; notifier backlog peaked at {max(watch.backlog)},"
        f" drained in {drained_s:.1f}s; notifier RSS {baseline // 1024} MiB before,"
        f" {peak // 1024} MiB at peak; each alert delivered once; trimming ran"
        f" {watch.trims_under_backlog} times during the backlog, checked {len(watch.backlog)}"
        " times, never removed a pending entry"
    )


async def test_trim_floor_survives_entries_acknowledged_while_it_looks(
    redis_server_url: str,
) -> None:
    """XINFO GROUPS says "pending", XPENDING a moment later says none: the floor is the
    entry after the last delivered one, not a crash (it stopped the archiver)."""
    names = StreamNames(f"f{uuid.uuid4().hex[:10]}")
    client = AsyncRedis.from_url(redis_server_url)
    await ensure_group(client, names.alerts, "g")
    stop = threading.Event()
    rounds = 0

    def read_and_ack() -> None:  # in a thread: truly between the two reads of group_floor
        nonlocal rounds
        other = Redis.from_url(redis_server_url)
        while not stop.is_set():
            entry = other.xadd(names.alerts, {"data": b"{}"})
            other.xreadgroup("g", "c", {names.alerts: ">"}, count=1)
            other.xack(names.alerts, "g", entry)
            rounds += 1
        other.close()

    worker = threading.Thread(target=read_and_ack)
    worker.start()
    try:
        floors = [await trim.group_floor(client, names.alerts) for _ in range(2000)]
    finally:
        stop.set()
        worker.join()
        await client.aclose()
    assert rounds > 100 and all(f is not None for f in floors)
