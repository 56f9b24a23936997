"""Three probe worker processes share one schedule; one is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.support.asgi import serve
from tests.support.wait import wait_until

CHECKS = 20
INTERVAL = 1.0


class Recorder:
    """A target that records when each path was requested and by which worker (pid)."""

    def __init__(self) -> None:
        self.hits: dict[str, list[tuple[float, int]]] = defaultdict(list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        agent = dict(scope["headers"]).get(b"user-agent", b"").decode()
        pid = re.search(r"-(\d+)\)$", agent)
        self.hits[scope["path"]].append((time.monotonic(), int(pid[1]) if pid else 0))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def runs_after(self, moment: float) -> dict[str, int]:
        return {p: sum(1 for t, _ in hits if t > moment) for p, hits in self.hits.items()}


def _config(url: str) -> str:
    checks = "".join(
        f"  - {{name: c{i}, type: http, tenant: t, service: s, interval: {INTERVAL}s, "
        f"url: '{url}/c{i}'}}\n"
        for i in range(CHECKS)
    )
    return f"tenants: [{{id: t}}]\nchecks:\n{checks}"


async def test_killed_worker_checks_are_taken_over_never_doubled_never_skipped(
    tmp_path: Path, redis_server_url: str, stream_prefix: str
) -> None:
    target = Recorder()
    async with serve(target) as url:
        config = tmp_path / "vigil.yaml"
        config.write_text(_config(url))
        env = {
            **os.environ,
            "VIGIL_CONFIG": str(config),
            "VIGIL_REDIS_URL": redis_server_url,
            "VIGIL_STREAM_PREFIX": stream_prefix,
            "VIGIL_OPS_PORT": "0",
        }
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from shared.cli import main; main()", "run", "probe", env=env
            )
            for _ in range(3)
        ]
        try:
            await wait_until(
                lambda: len(target.hits) == CHECKS and min(map(len, target.hits.values())) >= 3,
                what="three runs of every check",
            )
            # The victim: a worker that has been running checks.
            pids = [pid for hits in target.hits.values() for _, pid in hits]
            victim = next(p for p in procs if p.pid in pids)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            killed_at = time.monotonic()
            await wait_until(
                lambda: min(target.runs_after(killed_at + INTERVAL).values(), default=0) >= 2,
                what="two runs of every check after the takeover",
            )
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [await proc.wait() for proc in procs]
    assert codes.count(-signal.SIGKILL) == 1 and codes.count(0) == 2
    victim_runs = [t for hits in target.hits.values() for t, pid in hits if pid == victim.pid]
    assert victim_runs and max(victim_runs) < killed_at
    assert {pid for hits in target.hits.values() for _, pid in hits} <= {p.pid for p in procs}
    for path, hits in target.hits.items():
        times = sorted(t for t, _ in hits)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Never twice in one interval.
        assert min(gaps) > 0.5 * INTERVAL, (path, gaps)
        # None skipped; only a run the victim had claimed when it died may be lost.
        long = [(a, b) for a, b in itertools.pairwise(times) if b - a > 1.5 * INTERVAL]
        assert all(a < killed_at < b and b - a < 2.5 * INTERVAL for a, b in long), (path, gaps)
        # Taken over within one interval of the kill.
        assert min(t for t in times if t > killed_at) - killed_at < 1.5 * INTERVAL, path
