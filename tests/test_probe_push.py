"""Prometheus, heartbeat, status page and MCP monitors against real local HTTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

from schemas import MetricSample
from services.probe.monitors import ProbeContext
from services.probe.monitors.heartbeat import HeartbeatCheck, judge
from services.probe.monitors.mcp import McpCheck
from services.probe.monitors.prometheus import PrometheusCheck
from services.probe.monitors.statuspage import StatuspageCheck
from services.probe.pings import PingApp
from services.probe.service import execute, run_check
from shared.configbase import Seconds
from shared.localservers import free_port
from shared.streams import StreamNames
from tests.support.asgi import Reply, Routes, serve

COMMON = {"name": "c", "tenant": "t", "service": "s"}


@pytest_asyncio.fixture
async def ctx(redis: Redis, names: StreamNames) -> AsyncIterator[ProbeContext]:
    context = ProbeContext(redis, names)
    yield context
    await context.aclose()


def _exposition() -> bytes:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "requests", ["code"], registry=registry)
    requests.labels("200").inc(7)
    requests.labels("500").inc(2)
    Gauge("queue_depth", "depth", registry=registry).set(4)
    latency = Histogram("latency_seconds", "lat", buckets=(0.1, 1.0), registry=registry)
    latency.observe(0.05)
    latency.observe(0.5)
    return generate_latest(registry)


async def test_prometheus_scrape_publishes_samples(ctx: ProbeContext) -> None:
    app = Routes({"/metrics": Reply(200, _exposition()), "/junk": Reply(200, b"{not: metrics")})
    async with serve(app) as url:
        result, samples = await execute(PrometheusCheck(**COMMON, url=url + "/metrics"), ctx)
        kept, only = await execute(
            PrometheusCheck(**COMMON, url=url + "/metrics", include=["queue_"]), ctx
        )
        junk = await run_check(PrometheusCheck(**COMMON, url=url + "/junk"), ctx)
        too_many = await run_check(
            PrometheusCheck(**COMMON, url=url + "/metrics", max_samples=3), ctx
        )
        missing = await run_check(PrometheusCheck(**COMMON, url=url + "/nope"), ctx)
    by_key = {(s.metric, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert result.status == "healthy" and result.details["samples"] == len(samples)
    assert by_key[("http_requests_total", (("code", "500"),))] == 2.0
    assert by_key[("queue_depth", ())] == 4.0
    assert by_key[("latency_seconds_bucket", (("le", "0.1"),))] == 1.0
    assert by_key[("latency_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert all(isinstance(s, MetricSample) and s.tenant == "t" for s in samples)
    assert kept.status == "healthy" and [s.metric for s in only] == ["queue_depth"]
    assert junk.status == "unhealthy" and "unparseable" in junk.details["error"]
    assert too_many.status == "unhealthy" and "max_samples" in too_many.details["error"]
    assert missing.status == "unhealthy" and missing.details["error"] == "status 404"


@pytest.mark.parametrize(
    "seen, now, status, word",
    [
        ({"first_seen": 0}, 50_000, "healthy", None),
        ({"first_seen": 0}, 200_000, "unhealthy", "never pinged"),
        ({"success": 100_000}, 200_000, "healthy", None),
        ({"success": 100_000}, 300_000, "unhealthy", "no success ping"),
        ({"success": 100_000, "fail": 150_000}, 160_000, "unhealthy", "reported a failure"),
        ({"success": 100_000, "start": 150_000}, 170_000, "healthy", None),
        ({"success": 100_000, "start": 150_000}, 250_000, "unhealthy", "did not finish"),
        ({"fail": 100_000, "start": 150_000, "success": 160_000}, 170_000, "healthy", None),
    ],
)
def test_heartbeat_judge(seen: dict[str, int], now: int, status: str, word: str | None) -> None:
    check = HeartbeatCheck(**COMMON, period=Seconds(120), grace=Seconds(60))
    outcome = judge(check, seen, now)
    assert outcome.status == status
    assert word is None or word in outcome.details["error"]


async def test_heartbeat_pings_through_the_endpoint(ctx: ProbeContext, redis: Redis) -> None:
    job = HeartbeatCheck(**COMMON, period=Seconds(60), grace=Seconds(1))
    locked = HeartbeatCheck(
        name="locked", tenant="t", service="s", period=Seconds(60), token="tok-123"
    )
    app = PingApp([job, locked], redis, ctx.names)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await run_check(job, ctx)).status == "healthy"  # the clock starts now
        assert (await client.post("/ping/t/c/fail")).status_code == 200
        failed = await run_check(job, ctx)
        assert (await client.get("/ping/t/c")).status_code == 200
        recovered = await run_check(job, ctx)
        assert (await client.get("/ping/t/nope")).status_code == 404
        assert (await client.get("/ping/t/c/explode")).status_code == 404
        assert (await client.get("/ping/t/locked")).status_code == 403
        assert (await client.get("/ping/t/locked?token=wrong")).status_code == 403
        assert (await client.get("/ping/t/locked?token=tok-123")).status_code == 200
        bearer = {"authorization": "Bearer tok-123"}
        assert (await client.post("/ping/t/locked/start", headers=bearer)).status_code == 200
    assert failed.status == "unhealthy" and "failure" in failed.details["error"]
    assert recovered.status == "healthy"
    # Any worker sees the pings: they live in Redis, not in the endpoint's process.
    other = ProbeContext(redis, ctx.names)
    assert (await run_check(locked, other)).status == "healthy"
    await other.aclose()


def _status(indicator: str) -> bytes:
    return json.dumps(
        {"page": {"id": "x"}, "status": {"indicator": indicator, "description": "words"}}
    ).encode()


@pytest.mark.parametrize(
    "indicator, status",
    [
        ("none", "healthy"),
        ("minor", "degraded"),
        ("major", "unhealthy"),
        ("critical", "unhealthy"),
        ("weird", "unknown"),
    ],
)
async def test_statuspage(ctx: ProbeContext, indicator: str, status: str) -> None:
    async with serve(Routes({"/api/v2/status.json": Reply(200, _status(indicator))})) as url:
        result = await run_check(StatuspageCheck(**COMMON, url=url), ctx)
    assert result.status == status and result.details["indicator"] == indicator


async def test_statuspage_bad_answers(ctx: ProbeContext) -> None:
    app = Routes(
        {"/a/api/v2/status.json": Reply(200, b"<html>"), "/b/api/v2/status.json": Reply(503)}
    )
    async with serve(app) as url:
        garbage = await run_check(StatuspageCheck(**COMMON, url=url + "/a/"), ctx)
        down = await run_check(StatuspageCheck(**COMMON, url=url + "/b"), ctx)
    gone = await run_check(StatuspageCheck(**COMMON, url=f"http://127.0.0.1:{free_port()}"), ctx)
    assert garbage.status == "unknown" and "not a Statuspage" in garbage.details["error"]
    assert down.status == "unknown" and "503" in down.details["error"]
    assert gone.status == "unknown" and "unreachable" in gone.details["error"]


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "demo-mcp", "version": "1.2"},
    },
}


async def test_mcp_initialize(ctx: ProbeContext) -> None:
    sse = b"event: message\ndata: " + json.dumps(INIT).encode() + b"\n\n"
    app = Routes(
        {
            "/json": Reply(200, json.dumps(INIT).encode(), {"content-type": "application/json"}),
            "/sse": Reply(200, sse, {"content-type": "text/event-stream"}),
            "/err": Reply(200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}'),
            "/junk": Reply(200, b"hello"),
            "/auth": Reply(401, b""),
        }
    )
    async with serve(app) as url:
        plain = await run_check(McpCheck(**COMMON, url=url + "/json"), ctx)
        streamed = await run_check(
            McpCheck(**COMMON, url=url + "/sse", headers={"authorization": "Bearer k"}), ctx
        )
        refused = await run_check(McpCheck(**COMMON, url=url + "/err"), ctx)
        junk = await run_check(McpCheck(**COMMON, url=url + "/junk"), ctx)
        denied = await run_check(McpCheck(**COMMON, url=url + "/auth"), ctx)
    sent = json.loads(app.requests[0].body)
    assert sent["method"] == "initialize" and sent["params"]["clientInfo"]["name"] == "vigil-probe"
    assert "text/event-stream" in app.requests[0].headers["accept"]
    assert app.requests[1].headers["authorization"] == "Bearer k"
    assert plain.status == "healthy" and plain.details["server"] == "demo-mcp"
    assert streamed.status == "healthy" and streamed.details["server_version"] == "1.2"
    assert refused.status == "unhealthy" and "initialize failed: no" in refused.details["error"]
    assert junk.status == "unhealthy" and "not a JSON-RPC" in junk.details["error"]
    assert denied.status == "unhealthy" and denied.details["status_code"] == 401


async def test_the_probe_serves_the_ping_endpoint(ctx: ProbeContext, redis: Redis) -> None:
    from services.probe.service import Probe
    from shared.config import parse_config
    from tests.support.wait import wait_until

    config = parse_config(
        "tenants: [{id: t}]\nchecks:\n"
        "  - {name: nightly, type: heartbeat, tenant: t, service: s, period: 1h, interval: 1h}\n",
        "vigil.yaml",
        {},
    )
    port = free_port()
    probe = Probe(config, redis, ctx.names, ctx, ping_address=("127.0.0.1", port))
    running = asyncio.create_task(probe.run())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def pinged() -> bool:
                try:
                    return (await client.post("/ping/t/nightly")).status_code == 200
                except httpx.ConnectError:
                    return False  # not listening yet

            await wait_until(pinged, 10, "the ping endpoint")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert await redis.hget(ctx.names.key("probe:heartbeat:t/nightly"), "success") is not None
