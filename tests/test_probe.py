"""Monitors against real local servers; the shared schedule against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import CheckResult, MetricSample
from services.probe.monitors import MONITORS, ProbeContext
from services.probe.monitors.http import HttpCheck
from services.probe.monitors.tcp import TcpCheck
from services.probe.schedule import Schedule
from services.probe.service import Probe, run_check, scrub
from shared.config import Config, Tenant, parse_config
from shared.configbase import Seconds
from shared.errors import ConfigError, SettingsError
from shared.localservers import free_port
from shared.streams import Codec, StreamNames
from tests.support.asgi import Reply, Routes, serve
from tests.support.http import HttpStub
from tests.support.proxy import ReplyCutter
from tests.support.wait import wait_until


@pytest_asyncio.fixture
async def ctx(redis: Redis, names: StreamNames) -> AsyncIterator[ProbeContext]:
    context = ProbeContext(redis, names)
    yield context
    await context.aclose()


def http(url: str, **kw: object) -> HttpCheck:
    return HttpCheck(name="web", tenant="t", service="shop", url=url, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status, expect, outcome",
    [
        (200, [], "healthy"),
        (301, [], "healthy"),
        (503, [], "unhealthy"),
        (404, [], "unhealthy"),
        (201, [200], "unhealthy"),
        (418, [418], "healthy"),
    ],
)
async def test_http_status(ctx: ProbeContext, status: int, expect: list[int], outcome: str) -> None:
    with HttpStub(status=status) as stub:
        result = await run_check(http(stub.url + "/health", expect_status=expect), ctx)
    assert result.status == outcome, result.details
    assert result.details["status_code"] == status
    assert stub.requests[0].path == "/health"


async def test_http_slow_is_degraded_and_hung_is_unhealthy(ctx: ProbeContext) -> None:
    with HttpStub(delay=0.3) as stub:
        slow = await run_check(http(stub.url, degraded_ms=50.0), ctx)
        hung = await run_check(http(stub.url, timeout=Seconds(0.1)), ctx)
    assert slow.status == "degraded" and "slow" in slow.details["error"]
    assert hung.status == "unhealthy" and "time" in hung.details["error"].lower()
    assert hung.latency_ms < 1000


async def test_http_refused_and_garbage(ctx: ProbeContext) -> None:
    refused = await run_check(http(f"http://127.0.0.1:{free_port()}/"), ctx)
    assert refused.status == "unhealthy" and "ClientConnectorError" in refused.details["error"]

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x01 this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_check(http(f"http://127.0.0.1:{port}/"), ctx)
    assert result.status == "unhealthy"


async def test_tcp(ctx: ProbeContext) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        up = await run_check(
            TcpCheck(name="db", tenant="t", service="db", host="127.0.0.1", port=port), ctx
        )
    finally:
        listener.close()
    down = await run_check(
        TcpCheck(name="db", tenant="t", service="db", host="127.0.0.1", port=free_port()), ctx
    )
    assert up.status == "healthy"
    assert down.status == "unhealthy" and "connect failed" in down.details["error"]


async def test_workers_sharing_the_schedule_never_run_a_check_twice(
    redis: Redis, names: StreamNames
) -> None:
    workers = [Schedule(redis, names) for _ in range(3)]
    intervals = {f"t/c{i}": 1.0 for i in range(50)}
    # Every worker registers: the first one's phase wins. At 1 ms, so that no first run
    # is due at 0 ms, which would make eleven runs in (0 s, 10 s].
    for worker in workers:
        await worker.register(intervals, now_ms=1)
    claims: Counter[str] = Counter()
    # Simulated clock: 10 s in 100 ms ticks, the three workers racing at each tick.
    for tick in range(1, 101):
        batches = await asyncio.gather(*(w.claim(now_ms=tick * 100) for w in workers))
        for batch in batches:
            claims.update(batch)
    # First runs are jittered into [1 ms, 1 s]; then every second: 10 runs each, never 11.
    assert set(claims) == set(intervals)
    assert set(claims.values()) == {10}


async def test_a_dead_workers_checks_are_taken_over(redis: Redis, names: StreamNames) -> None:
    alive, dead = Schedule(redis, names), Schedule(redis, names)
    await dead.register({"t/a": 1.0, "t/b": 1.0}, now_ms=0)
    assert sorted(await dead.claim(now_ms=1000)) == ["t/a", "t/b"]
    # The dead worker never claims again; the next due runs go to the live one.
    # First runs are jittered into [0, 1 s), so the next ones fall in [1 s, 2 s).
    assert await alive.claim(now_ms=999) == []
    assert sorted(await alive.claim(now_ms=2000)) == ["t/a", "t/b"]


async def healthy_result(ctx: ProbeContext) -> CheckResult:
    with HttpStub() as stub:
        return await run_check(http(stub.url), ctx)


async def test_results_are_buffered_while_redis_is_down(
    ctx: ProbeContext, redis: Redis, names: StreamNames
) -> None:
    config = Config(tenants=[Tenant(id="t")])
    result = await healthy_result(ctx)
    broken = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    probe = Probe(config, broken, names, ctx)
    probe.buffer.extend([result, result])
    assert await probe.flush() == 0 and len(probe.buffer) == 2  # kept, not lost
    await broken.aclose()
    probe.redis = redis
    assert await probe.flush() == 2 and not probe.buffer
    assert await redis.xlen(names.results) == 2


async def test_a_batch_whose_reply_was_lost_is_not_published_twice(
    ctx: ProbeContext, redis: Redis, names: StreamNames
) -> None:
    config = Config(tenants=[Tenant(id="t")])
    result = await healthy_result(ctx)
    where = redis.connection_pool.connection_kwargs
    async with ReplyCutter(where["host"], where["port"]) as cutter:
        through = Redis.from_url(cutter.url)
        probe = Probe(config, through, names, ctx)
        probe.buffer.extend([result, result])
        cutter.armed = True
        assert await probe.flush() == 0 and len(probe.buffer) == 2  # no reply: unknown
        assert cutter.cuts == 1

        async def landed() -> bool:
            return await redis.xlen(names.results) == 2

        await wait_until(landed, what="the transaction whose reply was lost")
        assert await probe.flush() == 2 and not probe.buffer  # it landed: not sent again
        assert await probe.flush() == 0
        await through.aclose()
    assert await redis.xlen(names.results) == 2


async def test_results_samples_and_the_latest_cache_go_out_in_one_flush(
    ctx: ProbeContext, redis: Redis, names: StreamNames
) -> None:
    exposition = b"# TYPE up gauge\nup 1\n# TYPE jobs counter\njobs_total 3\n"
    async with serve(Routes({"/metrics": Reply(200, exposition), "/": Reply()})) as url:
        config = parse_config(
            "tenants: [{id: t}]\nchecks:\n"
            f"  - {{name: web, type: http, tenant: t, service: s, tier: critical, url: '{url}/'}}\n"
            f"  - {{name: m, type: prometheus, tenant: t, service: s, url: '{url}/metrics'}}\n",
            "vigil.yaml",
            {},
        )
        probe = Probe(config, redis, names, ctx)
        for check in config.checks:
            await probe._run_one(check)
    assert await probe.flush() == 4 and not probe.buffer
    results = Codec(CheckResult).decode(*_entries(await redis.xrange(names.results)))[0]
    samples = Codec(MetricSample).decode(*_entries(await redis.xrange(names.metrics)))[0]
    assert sorted(r.check for _, r in results) == ["m", "web"]
    assert sorted((s.metric, s.value) for _, s in samples) == [("jobs_total", 3.0), ("up", 1.0)]
    web = names.key("probe:latest:t/web")
    cached = msgspec.json.decode(await redis.get(web), type=CheckResult)
    assert cached.status == "healthy" and cached.tier == "critical", cached.details
    assert 25 <= await redis.ttl(web) <= 30  # critical: 30 s
    assert 110 <= await redis.ttl(names.key("probe:latest:t/m")) <= 120  # core: 120 s


def _entries(
    rows: list[tuple[bytes, dict[bytes, bytes]]],
) -> tuple[list[bytes], list[dict[bytes, bytes]]]:
    return [i for i, _ in rows], [f for _, f in rows]


async def _echo_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request's credentials in the body: a server that leaks what it got."""
    body = json.dumps({"got": dict(scope["headers"])[b"authorization"].decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_credentials_are_never_published(
    ctx: ProbeContext, redis: Redis, names: StreamNames, tmp_path: Path
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-token-42\n")
    async with serve(_echo_headers) as url:
        doc = (
            "tenants: [{id: t}]\nchecks:\n"
            f"  - name: api\n    type: http\n    tenant: t\n    service: s\n    url: {url}/\n"
            "    headers: {Authorization: 'Bearer ${API_TOKEN}'}\n"
            "    conditions: ['[BODY] == pat(*maintenance*)']\n"
            f"  - name: db\n    type: postgres\n    tenant: t\n    service: s\n"
            f"    dsn: 'postgresql://u:${{DB_PASSWORD}}@127.0.0.1:{free_port()}/x'\n"
        )
        env = {"API_TOKEN_FILE": str(secret_file), "DB_PASSWORD": "pg-pass-99"}
        config = parse_config(doc, "vigil.yaml", env)
        probe = Probe(config, redis, names, ctx)
        for check in config.checks:
            await probe._run_one(check)
    api = next(r for r in probe.buffer if isinstance(r, CheckResult) and r.check == "api")
    assert api.status == "unhealthy" and '"got": "***"' in api.details["error"]
    db = next(r for r in probe.buffer if isinstance(r, CheckResult) and r.check == "db")
    assert db.status == "unhealthy"
    await probe.flush()
    published = b"".join(f[b"data"] for _, f in await redis.xrange(names.results))
    cached = await redis.keys(names.key("probe:latest:*"))
    assert len(cached) == 2
    published += b"".join([await redis.get(k) or b"" for k in cached])
    assert b"s3cr3t-token-42" not in published and b"pg-pass-99" not in published


def test_vigil_monitors_lists_every_type() -> None:
    from typer.testing import CliRunner

    from shared.cli import app

    output = CliRunner().invoke(app, ["monitors"]).output
    lines = dict(line.split(None, 1) for line in output.strip().splitlines())
    assert set(lines) == set(MONITORS) and len(lines) >= 14
    assert all(len(description) > 10 for description in lines.values())


@pytest.mark.parametrize(
    "details, clean",
    [
        ({"error": "got Bearer abcdef123"}, {"error": "got Bearer ***"}),
        ({"error": "cut at Bearer abcd"}, {"error": "cut at Bearer ***"}),  # truncated secret
        ({"nested": ["x abcdef123 y"]}, {"nested": ["x *** y"]}),
        ({"error": "nothing secret"}, {"error": "nothing secret"}),
    ],
)
def test_scrub(details: dict[str, Any], clean: dict[str, Any]) -> None:
    assert scrub(details, ["abcdef123"]) == clean


@pytest.mark.parametrize(
    "check, field, reason",
    [
        ("{name: a, type: gopher, tenant: t, service: s}", "checks[0].type", "gopher"),
        (
            "{name: a, type: redis, tenant: t, service: s, url: 'redis://:${NOPE}@x'}",
            "checks[0].url",
            "NOPE",
        ),
        (
            "{name: a, type: dns, tenant: t, service: s, query: x, nameserver: 1.1.1.1, "
            "record: AAAB}",
            "checks[0].record",
            "unknown record type",
        ),
        (
            "{name: a, type: websocket, tenant: t, service: s, url: 'http://x'}",
            "checks[0].url",
            "ws://",
        ),
        ("{name: a, type: heartbeat, tenant: t, service: s}", "checks[0].period", "missing"),
    ],
)
def test_bad_checks_are_refused_at_start_naming_the_field(
    check: str, field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"tenants: [{{id: t}}]\nchecks:\n  - {check}\n", "vigil.yaml", {})
    assert caught.value.field == field and reason in caught.value.reason
    assert caught.value.line == 3


async def test_a_late_run_moves_the_phase_instead_of_a_catch_up_run(
    redis: Redis, names: StreamNames
) -> None:
    schedule = Schedule(redis, names)
    await schedule.register({"t/a": 1.0}, now_ms=0)
    first_due = await schedule.next_due_ms()
    assert first_due is not None
    # Claimed 600 ms late: the next run is a full interval later, not 400 ms later.
    assert await schedule.claim(now_ms=first_due + 600) == ["t/a"]
    assert await schedule.next_due_ms() == first_due + 1600
    # Claimed 100 ms late: the phase is kept.
    assert await schedule.claim(now_ms=first_due + 1700) == ["t/a"]
    assert await schedule.next_due_ms() == first_due + 2600


async def test_workers_can_serve_a_subset_of_tiers(
    ctx: ProbeContext, redis: Redis, names: StreamNames
) -> None:
    lines = "".join(
        f"  - {{name: {tier}{i}, type: tcp, tenant: t, service: s, tier: {tier}, "
        f"host: 127.0.0.1, port: 1, interval: 1s}}\n"
        for tier in ("critical", "core")
        for i in range(3)
    )
    config = parse_config(f"tenants: [{{id: t}}]\nchecks:\n{lines}", "vigil.yaml", {})
    critical = Probe(config, redis, names, ctx, tiers=["critical"])
    core = Probe(config, redis, names, ctx, tiers=["core"])
    everything = Probe(config, redis, names, ctx)
    for probe in (critical, core, everything):
        await probe.register(now_ms=1)
    # Jittered first runs all fall in [1 ms, 1 s]; the critical worker claims first.
    crit_due, next_due = await critical.claim_due(now_ms=1001, limit=100)
    core_due, _ = await core.claim_due(now_ms=1001, limit=100)
    assert sorted(c.name for c in crit_due) == ["critical0", "critical1", "critical2"]
    assert sorted(c.name for c in core_due) == ["core0", "core1", "core2"]
    assert next_due is not None and 1001 <= next_due <= 2001
    # A worker serving every tier shares both schedules; none is due twice.
    assert (await everything.claim_due(now_ms=1001, limit=100))[0] == []
    both, _ = await everything.claim_due(now_ms=2001, limit=100)
    assert len(both) == 6
    with pytest.raises(SettingsError, match="unknown tiers"):
        Probe(config, redis, names, ctx, tiers=["gold"])


@pytest.mark.parametrize(
    "kind, field, value",
    [
        ("prometheus", "url", "localhost:9100/metrics"),
        ("statuspage", "url", "ftp://status.example"),
        ("mcp", "url", "http://"),
        ("redis", "url", "http://user:hunter2@cache:6379"),
        ("stream_lag", "url", "cache:6379"),
        ("queue", "url", "redis//cache"),
        ("postgres", "dsn", "mysql://db/x"),
        ("postgres", "dsn", "host=db port"),
    ],
)
def test_bad_target_addresses_are_refused_naming_the_field(
    kind: str, field: str, value: str
) -> None:
    extra = {"stream_lag": ", stream: s, group: g", "queue": ", key: q"}.get(kind, "")
    doc = (
        "tenants: [{id: t}]\nchecks:\n"
        f"  - {{name: a, type: {kind}, tenant: t, service: s, {field}: '{value}'{extra}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, "vigil.yaml", {})
    assert caught.value.field == f"checks[0].{field}"
    assert "hunter2" not in str(caught.value)


async def test_a_critical_check_is_cut_at_the_tier_limit(
    ctx: ProbeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.probe.service as service

    monkeypatch.setitem(service.TIER_MAX_TIMEOUT_S, "critical", 0.2)

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        await asyncio.sleep(3)
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        check = http(f"http://127.0.0.1:{port}/", tier="critical", timeout=Seconds(30))
        result = await run_check(check, ctx)
    assert result.status == "unhealthy" and result.details["error"] == "timed out after 0.2s"
    assert result.latency_ms < 1000


async def test_results_survive_a_redis_restart_without_its_data(
    ctx: ProbeContext, names: StreamNames, tmp_path: Path
) -> None:
    from shared.localservers import LocalRedis
    from tests.support.http import HttpStub
    from tests.support.wait import wait_until

    server = LocalRedis(tmp_path / "redis", aof=False).start()
    private = Redis.from_url(server.url)
    try:
        with HttpStub() as target:
            config = parse_config(
                "tenants: [{id: t}]\nchecks:\n"
                "  - {name: w, type: http, tenant: t, service: s, interval: 200ms,"
                f" url: '{target.url}/'}}\n",
                "vigil.yaml",
                {},
            )
            probe = Probe(config, private, names, ctx)
            running = asyncio.create_task(probe.run())

            async def results(n: int) -> bool:
                try:
                    return int(await private.xlen(names.results)) >= n
                except RedisError:
                    return False

            await wait_until(lambda: results(2), 10, "results before the restart")
            server.stop()  # schedule, streams and all: gone
            server.start()
            await wait_until(lambda: results(3), 15, "results after the restart")
            assert not running.done()  # the worker rode out the outage
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    finally:
        await private.aclose()
        server.stop()
