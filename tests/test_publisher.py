"""The publisher API for other services, against a real Redis."""

from __future__ import annotations

import msgspec
import pytest
from redis.asyncio import Redis

from schemas import MetricSample
from shared.instrument import VigilMiddleware, job, timed_job
from shared.localservers import free_port
from shared.publisher import Publisher
from shared.streams import StreamNames
from tests.support.proxy import ReplyCutter
from tests.support.wait import wait_until


async def samples(redis: Redis, names: StreamNames) -> list[MetricSample]:
    return [
        msgspec.json.decode(f[b"data"], type=MetricSample)
        for _, f in await redis.xrange(names.metrics)
    ]


async def test_metrics_are_published_in_the_background(
    redis: Redis, redis_server_url: str, stream_prefix: str, names: StreamNames
) -> None:
    async with Publisher.connect(redis_server_url, stream_prefix) as vigil:
        for i in range(1200):
            vigil.metric("acme", "checkout", "orders", float(i), {"region": "eu"})

        async def all_there() -> bool:
            return int(await redis.xlen(names.metrics)) == 1200

        await wait_until(all_there, what="1200 samples")
    got = await samples(redis, names)
    assert [s.value for s in got] == [float(i) for i in range(1200)]
    assert got[0].labels == {"region": "eu"} and got[0].tenant == "acme"


async def test_an_outage_keeps_events_until_redis_is_back(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    publisher = Publisher(down, stream_prefix, max_buffer=3)
    for i in range(5):
        publisher.metric("acme", "api", "m", float(i))
    assert await publisher.flush() == 0
    assert publisher.dropped == 2 and len(publisher.buffer) == 3  # bounded, oldest dropped
    await down.aclose()
    publisher.redis = redis
    assert await publisher.flush() == 3
    assert [s.value for s in await samples(redis, names)] == [2.0, 3.0, 4.0]


async def test_a_batch_whose_reply_was_lost_is_not_published_twice(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    where = redis.connection_pool.connection_kwargs
    async with ReplyCutter(where["host"], where["port"]) as cutter:
        through = Redis.from_url(cutter.url)
        publisher = Publisher(through, stream_prefix)
        for i in range(3):
            publisher.metric("acme", "api", "m", float(i))
        cutter.armed = True
        assert await publisher.flush() == 0 and len(publisher.buffer) == 3
        assert cutter.cuts == 1

        async def landed() -> bool:
            return int(await redis.xlen(names.metrics)) == 3

        await wait_until(landed, what="the transaction whose reply was lost")
        publisher.metric("acme", "api", "m", 3.0)
        assert await publisher.flush() == 4 and not publisher.buffer  # 3 landed, 1 sent
        await through.aclose()
    assert [s.value for s in await samples(redis, names)] == [0.0, 1.0, 2.0, 3.0]


async def test_asgi_middleware_emits_one_event_per_request(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    publisher = Publisher(redis, stream_prefix)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = VigilMiddleware(app, publisher, "acme", "api")
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await wrapped({"type": "http", "method": "POST", "path": "/orders"}, receive, send)
    with pytest.raises(RuntimeError):
        await wrapped({"type": "http", "method": "GET", "path": "/boom"}, receive, send)
    await publisher.flush()
    got = await samples(redis, names)
    assert [(s.metric, s.labels) for s in got] == [
        ("api.request", {"method": "POST", "route": "/orders", "status": "201"}),
        ("api.request", {"method": "GET", "route": "/boom", "status": "500"}),
    ]
    assert all(s.value >= 0 for s in got)
    assert sent[0]["status"] == 201


async def test_jobs_report_duration_and_outcome(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    publisher = Publisher(redis, stream_prefix)
    with job(publisher, "acme", "billing", "invoice-run"):
        pass
    with pytest.raises(ValueError), job(publisher, "acme", "billing", "invoice-run"):
        raise ValueError("bad invoice")

    @timed_job(publisher, "acme", "billing", "sync")
    async def sync() -> int:
        return 7

    assert await sync() == 7
    await publisher.flush()
    assert [s.labels for s in await samples(redis, names)] == [
        {"job": "invoice-run", "outcome": "success"},
        {"job": "invoice-run", "outcome": "failure"},
        {"job": "sync", "outcome": "success"},
    ]


async def test_publish_metric_command(
    redis: Redis, redis_server_url: str, stream_prefix: str, names: StreamNames
) -> None:
    import asyncio
    import os
    import sys

    env = {**os.environ, "VIGIL_REDIS_URL": redis_server_url, "VIGIL_STREAM_PREFIX": stream_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from shared.cli import main; main()",
        "publish",
        "metric",
        "acme",
        "checkout",
        "queue.depth",
        "17",
        "--label",
        "queue=mail",
        env=env,
    )
    assert await proc.wait() == 0
    [sample] = await samples(redis, names)
    assert (sample.metric, sample.value, sample.labels) == ("queue.depth", 17.0, {"queue": "mail"})


async def test_events_dropped_during_a_flush_do_not_take_newer_ones_with_them(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    import asyncio

    publisher = Publisher(redis, stream_prefix, max_buffer=3)
    for i in range(3):
        publisher.metric("acme", "api", "m", float(i))
    flushing = asyncio.create_task(publisher.flush())
    await asyncio.sleep(0)  # the flush has taken 0, 1, 2 and waits on Redis
    for i in range(3, 5):  # buffer full: 0 and 1 are dropped meanwhile
        publisher.metric("acme", "api", "m", float(i))
    # 3 and 4 were not in the first batch: they stay buffered and go out in the next one.
    assert await flushing == 5
    assert publisher.dropped == 2 and not publisher.buffer
    assert [s.value for s in await samples(redis, names)] == [0.0, 1.0, 2.0, 3.0, 4.0]
