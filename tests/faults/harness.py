"""A fault harness: real workers as processes, a recording receiver, counts from the archive.

``Workers`` starts ``vigil run <role>`` processes (one per role) against the Redis and
PostgreSQL it is given and can ``kill -9`` and restart each. ``Receiver`` is the
loopback ``HttpStub`` that records every request and answers each path as told: ``200``,
``500``, ``429``, ``hang`` (no answer until the client gives up) or ``close`` (hang up
without an answer). The counting helpers read what was published (the streams), what was archived
(PostgreSQL) and what was delivered (the receiver), so a test can assert "nothing lost,
nothing duplicated" by comparing the three.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from redis import Redis
from redis.exceptions import ResponseError

from shared.streams import StreamNames
from tests.support.http import HttpStub, Request

ROLES = ("probe", "evaluator", "notifier", "archiver")


def soak() -> bool:
    """``VIGIL_SOAK=1`` runs the longer variants (off by default: CI time is bounded)."""
    return os.environ.get("VIGIL_SOAK", "") == "1"


def poll(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for ``predicate`` to hold, checking often, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


# --- the receiver ---------------------------------------------------------------------


class Receiver(HttpStub):
    """The recording stub, read as alert deliveries: what each path was answered."""

    @property
    def hits(self) -> list[Request]:
        return self.posts()

    def answered(self, path: str, mode: str = "200") -> list[Request]:
        return [h for h in self.posts() if h.path == path and h.answer == mode]

    def delivered_ids(self, path: str) -> Counter[str]:
        """How often each alert event id was delivered (answered 200) on ``path``."""
        return Counter(json.loads(h.body)["event_id"] for h in self.answered(path))


# --- the workers ----------------------------------------------------------------------


@dataclass
class Workers:
    """One ``vigil run <role>`` process per role, started, killed and restarted at will."""

    directory: Path
    config: str  # YAML text
    redis_url: str
    database_url: str
    prefix: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    def env(self) -> dict[str, str]:
        config = self.directory / "vigil.yaml"
        config.write_text(self.config)
        return {
            **os.environ,
            "VIGIL_CONFIG": str(config),
            "VIGIL_REDIS_URL": self.redis_url,
            "VIGIL_DATABASE_URL": self.database_url,
            "VIGIL_STREAM_PREFIX": self.prefix,
            "VIGIL_OPS_PORT": "0",
            "VIGIL_RECLAIM_IDLE_MS": "3000",
            **self.extra_env,
        }

    def start(self, *roles: str) -> None:
        env = self.env()
        for role in roles or ROLES:
            self.starts[role] += 1
            log = self.directory / f"{role}.{self.starts[role]}.log"
            with open(log, "wb") as out:
                self.procs[role] = subprocess.Popen(
                    [sys.executable, "-c", "from shared.cli import main; main()", "run", role],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )

    def kill9(self, role: str) -> None:
        proc = self.procs.pop(role)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_role(self, role: str) -> int:
        """SIGTERM one worker (a clean stop); its exit code."""
        proc = self.procs.pop(role)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)

    def alive(self) -> dict[str, int | None]:
        """Each role's exit code, None while it runs."""
        return {role: proc.poll() for role, proc in self.procs.items()}

    def poll(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        """``poll`` that fails at once, with the log, when a worker has died."""

        def check() -> bool:
            for role, code in self.alive().items():
                if code is not None:
                    raise AssertionError(f"{role} exited ({code}): {self.log(role)[-3000:]}")
            return predicate()

        poll(check, timeout, what)

    def wait_ready(self, redis: Redis, names: StreamNames, timeout: float = 60.0) -> None:
        """Until every group of a full pipeline has read from its stream (a fault injected
        earlier would hit a worker still starting, which is another test)."""
        wanted = {
            names.results: {b"evaluator", b"archiver"},
            names.alerts: {b"notifier", b"archiver"},
            names.deliveries: {b"archiver"},
        }

        def ready() -> bool:
            for stream, groups in wanted.items():
                try:
                    info: Any = redis.xinfo_groups(stream)
                except ResponseError:  # no such stream yet
                    return False
                have = {g["name"] for g in info if g["last-delivered-id"] != b"0-0"}
                if not groups <= have:
                    return False
            return True

        self.poll(ready, timeout, "every group reading")

    def settle(self, redis: Redis, streams: list[str], timeout: float = 60.0) -> None:
        """Until every group has caught up; on timeout, say which did not."""
        try:
            self.poll(lambda: settled(redis, streams), timeout, "every group to catch up")
        except AssertionError as exc:
            logs = {role: self.log(role)[-1500:] for role in self.procs}
            raise AssertionError(f"{exc}: {behind(redis, streams)}; logs: {logs}") from None

    def rss_kib(self, role: str) -> int:
        """Resident memory of a worker, from /proc."""
        for line in Path(f"/proc/{self.procs[role].pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {role}")

    def log(self, role: str) -> str:
        return (self.directory / f"{role}.{self.starts[role]}.log").read_text(errors="replace")

    def stop(self) -> dict[str, int]:
        """SIGTERM every worker; their exit codes."""
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {}
        for role, proc in self.procs.items():
            try:
                codes[role] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[role] = proc.wait()
        self.procs.clear()
        return codes

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# --- counting -------------------------------------------------------------------------


def stream_ids(redis: Redis, stream: str, field_name: str = "event_id") -> list[str]:
    """``field_name`` of every message on ``stream`` (its JSON ``data``), in order."""
    out: list[str] = []
    start = "-"
    while True:
        page: Any = redis.xrange(stream, min=start, count=1000)
        out += [json.loads(fields[b"data"])[field_name] for _, fields in page]
        if len(page) < 1000:
            return out
        start = "(" + page[-1][0].decode()


def alert_states(redis: Redis, names: StreamNames) -> dict[str, list[str]]:
    """Each alert fingerprint's states, in the order they were published."""
    out: dict[str, list[str]] = {}
    for _, fields in iter_stream(redis, names.alerts):
        alert = json.loads(fields[b"data"])
        out.setdefault(alert["fingerprint"], []).append(alert["state"])
    return out


def iter_stream(redis: Redis, stream: str) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    start = "-"
    while True:
        page: Any = redis.xrange(stream, min=start, count=1000)
        yield from page
        if len(page) < 1000:
            return
        start = "(" + page[-1][0].decode()


def archived_ids(database_url: str, table: str, column: str = "event_id") -> list[str]:
    """Every archived row's ``column`` (one per row, duplicates kept)."""
    with psycopg.connect(database_url, connect_timeout=3) as conn:
        rows = conn.execute(f"select {column}::text from {table}").fetchall()
    return [row[0] for row in rows]


def settled(redis: Redis, streams: list[str]) -> bool:
    """Every group of every stream has read everything and acknowledged it."""
    return not behind(redis, streams)


def behind(redis: Redis, streams: list[str]) -> list[str]:
    """The groups that have not read or not acknowledged everything, as text."""
    out = []
    for stream in streams:
        if not redis.exists(stream):
            continue
        for group in redis.xinfo_groups(stream):  # type: ignore[union-attr]
            if int(group["pending"]) or group.get("lag") not in (0, None):
                out.append(f"{stream} {group['name']!r}: {group}")
    return out


def duplicates(counts: Counter[str] | list[str]) -> dict[str, int]:
    tally = counts if isinstance(counts, Counter) else Counter(counts)
    return {k: n for k, n in tally.items() if n > 1}
