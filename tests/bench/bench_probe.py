"""Probe throughput: HTTP checks per second from one and from two probe processes.

A local target (its own process: a bare asyncio protocol on uvloop answering a canned
200) answers every check.
Each probe process is a real ``vigil run probe`` sharing one schedule in Redis;
far more checks are due than a process can run, so the rate measured is what the
processes can do, counted as results landing on the results stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from shared.streams import StreamNames
from tests.bench.framework import BenchEnv, Row, median_of
from tests.support.wait import wait_until

GOAL_PER_PROCESS = 2_000


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class _Target(asyncio.Protocol):
    """Answers each request of a keep-alive connection with a canned 200: the probes'
    checks are GETs without a body, so a request ends at its blank line."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer.rsplit(b"\r\n\r\n", 1)[1]
            self.transport.write(OK * count)  # type: ignore[attr-defined]


def serve_target(port: int) -> None:
    """The check target, in its own process: a bare protocol on uvloop, so that on two
    shared cores it takes far less CPU per request than an ASGI server would."""
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            _Target, "127.0.0.1", port, backlog=4096
        )
        await server.serve_forever()

    uvloop.run(serve())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(url: str, checks: int) -> str:
    lines = [
        f"  - {{name: c{i}, type: http, tenant: t, service: s, interval: 1s, url: '{url}/c{i}'}}"
        for i in range(checks)
    ]
    return "tenants: [{id: t}]\nchecks:\n" + "\n".join(lines) + "\n"


async def _spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", *args, env=env, stderr=asyncio.subprocess.DEVNULL
    )


async def _measure(
    env: BenchEnv, url: str, workdir: Path, processes: int, checks: int, window: float
) -> float:
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    config = workdir / f"probe-{processes}.yaml"
    config.write_text(_config(url, checks))
    proc_env = {
        **os.environ,
        "VIGIL_CONFIG": str(config),
        "VIGIL_REDIS_URL": env.redis_url,
        "VIGIL_STREAM_PREFIX": names.prefix,
        "VIGIL_OPS_PORT": "0",  # several processes on one host
    }
    redis = Redis.from_url(env.redis_url)
    procs = [
        await _spawn("from shared.cli import main; main()", "run", "probe", env=proc_env)
        for _ in range(processes)
    ]
    try:
        # Warm up until results flow, then count what lands in the window.
        async def flowing() -> bool:
            return int(await redis.xlen(names.results)) >= checks

        await wait_until(flowing, 60, "the first round of results")
        await asyncio.sleep(1.0)
        before, started = await redis.xlen(names.results), time.perf_counter()
        await asyncio.sleep(window)
        after, elapsed = await redis.xlen(names.results), time.perf_counter() - started
        healthy = await _healthy_share(redis, names)
        sample = (await redis.xrevrange(names.results, count=1) or [(b"", {})])[0][1]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await proc.wait()
        for key in await redis.keys(names.key("*")):
            await redis.delete(key)
        await redis.aclose()
    if healthy < 0.99:
        raise RuntimeError(f"only {healthy:.1%} of the checks were healthy: {sample!r}")
    return (after - before) / elapsed


async def _healthy_share(redis: Redis, names: StreamNames) -> float:
    entries = await redis.xrevrange(names.results, count=500)
    healthy = sum(1 for _, fields in entries if b'"status":"healthy"' in fields[b"data"])
    return healthy / max(1, len(entries))


async def run(env: BenchEnv) -> list[Row]:
    checks = env.size(12_000, 400)
    window = 2.0 if env.quick else 6.0
    port = _free_port()
    target = await _spawn(
        f"from tests.bench.bench_probe import serve_target; serve_target({port})",
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            runs = 1 if env.quick else 3
            one = await median_of(runs, lambda: _measure(env, url, Path(tmp), 1, checks, window))
            two = await median_of(runs, lambda: _measure(env, url, Path(tmp), 2, checks, window))
    finally:
        target.send_signal(signal.SIGTERM)
        await target.wait()
    note = f"{checks:,} checks due every 1 s, canned-response target, {window:g} s window"
    if not env.quick:
        note += ", median of 3"
    # Quick mode runs fewer checks than a process can do: its rate says nothing of speed.
    goal = None if env.quick else GOAL_PER_PROCESS
    return [
        Row("probe HTTP checks (1 process)", one, "checks/s", goal, note=note),
        Row("probe HTTP checks (2 processes)", two, "checks/s", goal and 1.8 * goal, note=note),
        Row(
            "probe scale-out (2 vs 1 process)",
            two / one,
            "x",
            note="goal 1.8x; the target and Redis share the same cores",
        ),
    ]
