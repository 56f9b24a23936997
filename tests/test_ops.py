"""Operations endpoints and Vigil's own metrics, on a running pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from datetime import UTC, datetime

import httpx
import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from schemas import CheckResult
from shared.config import Config
from shared.localservers import free_port
from shared.logs import JsonFormatter
from shared.ops import ops_app
from shared.runner import readiness_checks, run
from shared.settings import Settings
from shared.streams import StreamNames, encode
from tests.support.wait import wait_until


async def test_livez_readyz_and_metrics(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    port = free_port()
    settings = dataclasses.replace(settings, ops_port=port, database_url=database_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, Config(), ["evaluator", "archiver"], stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, what="readiness")
            body = (await http.get("/readyz")).json()
            assert body["checks"] == ["consumers", "postgres", "redis"]
            assert (await http.get("/livez")).json() == {"status": "ok"}

            await redis.xadd(names.results, {"data": b"not json"})
            await redis.xadd(
                names.results,
                encode(
                    CheckResult(
                        tenant="t",
                        service="s",
                        check="c",
                        tier="core",
                        status="healthy",
                        latency_ms=1,
                        observed_at=datetime.now(UTC),
                    )
                ),
            )

            dead_lettered = (
                f'vigil_dead_letters_total{{group="archiver",kind="undecodable",'
                f'stream="{names.results}"}} 1.0'
            )
            consumed = f'vigil_events_consumed_total{{group="evaluator",stream="{names.results}"}}'

            async def counted() -> bool:
                # Each service counts once its own batch commits; the two are independent.
                text = (await http.get("/metrics")).text
                return dead_lettered in text and consumed in text

            await wait_until(counted, what="dead letter and consumed metrics")
            text = (await http.get("/metrics")).text
            assert "vigil_batch_seconds_bucket" in text
            assert "process_resident_memory_bytes" in text

            async def archived() -> bool:
                text = (await http.get("/metrics")).text
                rows = re.search(
                    r'vigil_archived_rows_total\{outcome="new",table="check_results"\} (\S+)', text
                )
                return rows is not None and float(rows[1]) >= 1

            await wait_until(archived, what="the archived-rows metric")
            assert (
                'vigil_archiver_commit_seconds_count{table="check_results"}'
                in (await http.get("/metrics")).text
            )
    finally:
        stop.set()
        await task


async def test_readyz_names_what_is_failing(redis: Redis, settings: Settings) -> None:
    broken = dataclasses.replace(settings, database_url=f"postgresql://x@127.0.0.1:{free_port()}/x")
    checks = readiness_checks(redis, RedisBroker(settings.redis_url), broken)
    transport = httpx.ASGITransport(app=ops_app(checks))
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert list(body["failing"]) == ["postgres"]
    assert "connection" in body["failing"]["postgres"].lower()


async def test_a_port_in_use_is_an_error_at_start(settings: Settings) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = dataclasses.replace(settings, ops_port=taken.getsockname()[1])
        with pytest.raises(OSError):
            await run(busy, Config(), ["evaluator"], asyncio.Event())


def test_json_log_lines_carry_service_and_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "services.notifier",
            "levelname": "WARNING",
            "msg": "sent %s",
            "args": ("x",),
            "event_id": "ev1",
            "tenant": "acme",
        }
    )
    line = json.loads(JsonFormatter("notifier").format(record))
    assert line["message"] == "sent x" and line["service"] == "notifier"
    assert (line["event_id"], line["tenant"], line["level"]) == ("ev1", "acme", "warning")
