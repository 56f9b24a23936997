"""Alert events -> webhook deliveries per second from one notifier process.

The receiver is a minimal ASGI app under uvicorn in its own process (so it does
not compete with the notifier for this process's core); it counts what it gets.
The notifier side is the real path, in a process of its own on the services' event
loop: stream batch -> routing -> idempotency claims -> deliver() -> records and XACK
in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import statistics
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult
from services.evaluator.rules import ConsecutiveRule
from services.notifier.channels import SendContext
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.service import GROUP, Notifier
from shared.config import Config, Route, Tenant
from shared.consumer import BatchProcessor
from shared.netguard import EgressPolicy, guarded_session
from shared.runner import run as run_services
from shared.runner import run_loop
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group
from tests.bench.framework import BenchEnv, Row, median_of
from tests.support.wait import wait_until

BATCH = 500
CONNECTIONS = 100


def _receiver(port: int) -> None:
    import uvicorn

    count = 0
    latencies: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal count
        if scope["type"] != "http":
            return
        more, received = True, b""
        while more:
            message = await receive()
            received += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            count += 1
            if scope["path"] == "/latency":
                alert = json.loads(received)
                if alert["state"] == "firing":
                    started = datetime.fromisoformat(alert["started_at"]).timestamp()
                    latencies.append((time.time() - started) * 1000)
            body = b""
        elif scope["path"] == "/latency":
            body = json.dumps(latencies).encode()
        else:
            body = str(count).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(env: BenchEnv) -> list[Row]:
    total, runs = env.size(10_000, 1_000), 1 if env.quick else 3
    port = _free_port()
    spawn = multiprocessing.get_context("spawn")
    receiver = spawn.Process(target=_receiver, args=(port,))
    receiver.start()
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:

            async def up() -> bool:
                try:
                    return (await http.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(up, timeout=20, what="the receiver")
            # The notifier side runs in a process of its own, on the services' event loop.
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                value, cpu_us, bare = await asyncio.get_running_loop().run_in_executor(
                    pool, _notifier_process, env.redis_url, url, total, runs
                )
            latency = await _pipeline_latency(env, url, http)
    finally:
        receiver.terminate()
        receiver.join(10)
    return [
        Row(
            "alert events -> webhook deliveries (1 notifier process)",
            value,
            "deliveries/s",
            goal=5_000,
            note=f"{total:,} events, batches of {BATCH}, the notifier's guarded HTTP client "
            f"(pyreqwest) on uvloop, {CONNECTIONS} connections, receiver in its own process",
        ),
        Row(
            "notifier CPU time per delivery",
            cpu_us,
            "µs",
            higher_is_better=False,
            note="process time of the notifier process over the run above",
        ),
        Row(
            "same receiver, bare POSTs through the same client (ceiling of this setup)",
            bare,
            "requests/s",
            note="no notifier work: what the single-process receiver can take here",
        ),
        *latency,
    ]


def _notifier_process(
    redis_url: str, url: str, total: int, runs: int
) -> tuple[float, float, float]:
    """(deliveries/s, CPU µs per delivery, bare requests/s), medians of ``runs``."""
    return run_loop(_throughput(redis_url, url, total, runs))


async def _throughput(
    redis_url: str, url: str, total: int, runs: int
) -> tuple[float, float, float]:
    redis = Redis.from_url(redis_url)
    config = Config(
        channels=[WebhookConfig(name="hook", url=url + "/in")],
        routes=[Route(channels=["hook"])],
    )
    # CPU time of this process per delivery: steadier than the rate on a busy
    # machine, and 1e6 / it is the rate one core could reach.
    cpu_us: list[float] = []
    try:
        async with (
            httpx.AsyncClient() as http,
            guarded_session(EgressPolicy(), limit=CONNECTIONS) as session,
        ):

            async def once() -> float:
                names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
                ctx = SendContext(session, redis, names)
                notifier = Notifier(config, redis, names, ctx)
                process = BatchProcessor(redis, names, notifier.consumer(), 5)
                await ensure_group(redis, names.alerts, GROUP)
                template = AlertEvent(
                    fingerprint="fp",
                    rule="down",
                    tenant="acme",
                    service="shop",
                    severity="critical",
                    state="firing",
                    title="shop is down",
                    started_at=datetime.now(UTC),
                )
                for start in range(0, total, BATCH):
                    pipe = redis.pipeline(transaction=False)
                    for i in range(start, min(total, start + BATCH)):
                        alert = msgspec.structs.replace(template, event_id=f"e{i}")
                        pipe.xadd(names.alerts, encode(alert))
                    await pipe.execute()
                before = int((await http.get(url)).text)
                cpu, started, done = time.process_time(), time.perf_counter(), 0
                while done < total:
                    [[_, entries]] = await redis.xreadgroup(
                        GROUP, "c", {names.alerts: ">"}, count=BATCH
                    )
                    await process([i for i, _ in entries], [f for _, f in entries])
                    done += len(entries)
                elapsed = time.perf_counter() - started
                cpu_us.append((time.process_time() - cpu) / total * 1e6)
                received = int((await http.get(url)).text) - before
                assert received == total, f"receiver got {received} of {total}"
                assert await redis.xlen(names.deliveries) == total  # no retries
                await redis.delete(names.alerts, names.deliveries)
                return total / elapsed

            async def ceiling() -> float:
                # The receiver's own limit: bare POSTs, no notifier work at all.
                gate = asyncio.Semaphore(64)

                async def post() -> None:
                    async with gate:
                        assert (
                            await session.request("POST", url + "/in", 5, content=b"{}")
                        ).status == 200

                started = time.perf_counter()
                await asyncio.gather(*(post() for _ in range(total)))
                return total / (time.perf_counter() - started)

            value = await median_of(runs, once)
            bare = await median_of(runs, ceiling)
    finally:
        await redis.aclose()
    return value, statistics.median(cpu_us), bare


async def _pipeline_latency(env: BenchEnv, url: str, http: httpx.AsyncClient) -> list[Row]:
    """Breach -> webhook delivery through the evaluator and the notifier (one process,
    ``shared.runner.run``) while 1,000 check results/s flow; 10 breaches a second."""
    seconds, warmup, tick, per_tick, services = (2 if env.quick else 10), 1.0, 0.01, 10, 200
    names = StreamNames(f"bench{uuid.uuid4().hex[:8]}")
    settings = Settings(
        redis_url=env.redis_url,
        database_url="",
        config_path=None,
        stream_prefix=names.prefix,
        block_ms=100,
        consumer_name="bench",
    )
    config = Config(
        tenants=[Tenant(id="acme")],
        rules=[ConsecutiveRule(name="down", failures=1, successes=1)],
        channels=[WebhookConfig(name="hook", url=url + "/latency")],
        routes=[Route(channels=["hook"])],
    )
    stop = asyncio.Event()
    pipeline = asyncio.create_task(run_services(settings, config, ["evaluator", "notifier"], stop))
    redis = Redis.from_url(env.redis_url)
    breaches = 0
    try:
        ticks = int((warmup + seconds) / tick)
        started = time.perf_counter()
        for t in range(ticks):
            measuring = t * tick >= warmup
            now = datetime.now(UTC)
            pipe = redis.pipeline(transaction=False)
            for k in range(per_tick):
                # Breaching series x0..x19 fire once (k == 0) and resolve a tick later.
                breach = measuring and k == 0 and t % 10 == 0
                recover = measuring and k == 0 and t % 10 == 1
                breaches += breach
                service = f"s{(t * per_tick + k) % services}"
                if breach or recover:
                    service = f"x{(t // 10) % 20}"
                result = CheckResult(
                    tenant="acme",
                    service=service,
                    check="c",
                    tier="core",
                    status="unhealthy" if breach else "healthy",
                    latency_ms=1.0,
                    observed_at=now,
                )
                pipe.xadd(names.results, encode(result))
            await pipe.execute()
            delay = started + (t + 1) * tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

        async def latencies() -> list[float]:
            return list(json.loads((await http.get(url + "/latency")).text))

        async def all_arrived() -> bool:
            return len(await latencies()) >= breaches

        await wait_until(all_arrived, timeout=30, what="every breach delivered")
        values = await latencies()
    finally:
        stop.set()
        await pipeline
        await redis.delete(names.results, names.alerts, names.deliveries)
        await redis.aclose()
    cuts = statistics.quantiles(values, n=100)
    note = f"{breaches} breaches at 10/s among 1,000 results/s, evaluator + notifier in one process"
    return [
        Row("breach -> delivery latency p50", cuts[49], "ms", higher_is_better=False, note=note),
        Row(
            "breach -> delivery latency p99", cuts[98], "ms", 50, higher_is_better=False, note=note
        ),
    ]
