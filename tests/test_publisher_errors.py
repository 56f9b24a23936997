"""Application errors from other services: Publisher.error, the logging handler and the
``vigil publish error`` command, against a real Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import msgspec
from redis.asyncio import Redis

from schemas import ApplicationError
from shared.errorlog import VigilErrorHandler
from shared.publisher import Publisher
from shared.streams import StreamNames


async def errors(redis: Redis, names: StreamNames) -> list[ApplicationError]:
    return [
        msgspec.json.decode(f[b"data"], type=ApplicationError)
        for _, f in await redis.xrange(names.errors)
    ]


async def test_error_lands_on_the_errors_stream(
    redis: Redis, redis_server_url: str, stream_prefix: str, names: StreamNames
) -> None:
    async with Publisher.connect(redis_server_url, stream_prefix) as vigil:
        vigil.error(
            "acme",
            "checkout",
            "checkout-api",
            "DatabaseError",
            "pool exhausted",
            endpoint="/pay",
            affected_users=3,
        )
    [err] = await errors(redis, names)
    assert (err.tenant, err.service, err.source, err.error_type) == (
        "acme",
        "checkout",
        "checkout-api",
        "DatabaseError",
    )
    assert (err.message, err.endpoint, err.affected_users, err.error_count) == (
        "pool exhausted",
        "/pay",
        3,
        1,
    )


async def test_logging_handler_reports_error_records_with_their_trace(
    redis: Redis, names: StreamNames, stream_prefix: str
) -> None:
    publisher = Publisher(redis, stream_prefix)
    logger = logging.getLogger("acme.billing.test")
    handler = VigilErrorHandler(publisher, "acme", "billing")
    logger.addHandler(handler)
    try:
        logger.warning("only a warning")  # below ERROR: not reported
        try:
            {}["invoice"]
        except KeyError:
            logger.exception("invoice %s failed", 42, extra={"endpoint": "/invoices"})
        logger.error("no exception attached")
    finally:
        logger.removeHandler(handler)
    assert await publisher.flush() == 2
    first, second = await errors(redis, names)
    assert (first.error_type, first.source, first.message) == (
        "KeyError",
        "acme.billing.test",
        "invoice 42 failed",
    )
    assert first.endpoint == "/invoices"
    assert "Traceback" in first.stack_trace and '{}["invoice"]' in first.stack_trace
    assert (second.error_type, second.stack_trace) == ("LogError", "")


async def test_the_publishers_own_failures_are_not_reported(
    redis: Redis, stream_prefix: str
) -> None:
    publisher = Publisher(redis, stream_prefix)
    handler = VigilErrorHandler(publisher, "acme", "billing", source="billing-worker")
    handler.handle(
        logging.makeLogRecord({"name": "shared.publisher", "levelno": logging.ERROR, "msg": "x"})
    )
    assert not publisher.buffer


async def test_publish_error_command(
    redis: Redis, redis_server_url: str, stream_prefix: str, names: StreamNames
) -> None:
    env = {**os.environ, "VIGIL_REDIS_URL": redis_server_url, "VIGIL_STREAM_PREFIX": stream_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from shared.cli import main; main()",
        "publish",
        "error",
        "acme",
        "billing",
        "billing-worker",
        "TimeoutError",
        "upstream timed out",
        "--stack-trace",
        "-",
        "--count",
        "4",
        env=env,
        stdin=asyncio.subprocess.PIPE,
    )
    await proc.communicate(b"Traceback (most recent call last):\n  ...\nTimeoutError\n")
    assert proc.returncode == 0
    [err] = await errors(redis, names)
    assert (err.source, err.error_type, err.message, err.error_count) == (
        "billing-worker",
        "TimeoutError",
        "upstream timed out",
        4,
    )
    assert err.stack_trace.startswith("Traceback")


async def test_publish_error_to_a_dead_redis_fails_loudly(stream_prefix: str) -> None:
    from shared.localservers import free_port

    env = {
        **os.environ,
        "VIGIL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "VIGIL_STREAM_PREFIX": stream_prefix,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from shared.cli import main; main()",
        "publish",
        "error",
        "acme",
        "billing",
        "worker",
        "E",
        "m",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"could not publish" in err
