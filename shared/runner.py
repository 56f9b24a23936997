"""Wire services to Redis, PostgreSQL and each other, and run them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import httpx
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.archiver.service import Archiver
from services.evaluator.service import Evaluator
from services.notifier import redact
from services.notifier.channels import SendContext
from services.notifier.intake.server import serve as serve_intake
from services.notifier.service import Notifier
from services.probe.monitors import ProbeContext
from services.probe.service import Probe
from shared.config import Config
from shared.consumer import Consumer, attach
from shared.errors import SettingsError
from shared.settings import Settings
from shared.streams import StreamNames, ensure_group

log = logging.getLogger(__name__)
ROLES = ("probe", "evaluator", "notifier", "archiver")
BROKER_LOGGER = "vigil.broker"


async def run(
    settings: Settings, config: Config, roles: Iterable[str], stop: asyncio.Event
) -> None:
    """Run the given services in this process until ``stop`` is set or one of them fails."""
    roles = set(roles)
    if "archiver" in roles and not settings.database_url:
        raise SettingsError("the archiver needs VIGIL_DATABASE_URL")
    names = StreamNames(settings.stream_prefix)
    redis = Redis.from_url(settings.redis_url)
    # FastStream's per-batch and per-task lines go to a logger of ours (see BROKER_LOGGER).
    broker = RedisBroker(
        settings.redis_url, logger=logging.getLogger(BROKER_LOGGER), log_level=logging.DEBUG
    )
    consumers: list[Consumer[Any]] = []
    loops: list[Callable[[], Awaitable[None]]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    async with httpx.AsyncClient(follow_redirects=True) as http:
        if "evaluator" in roles:
            evaluator = Evaluator(config, redis, names)
            await evaluator.load()
            consumers.append(evaluator.consumer())
        if "notifier" in roles:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
            closers.append(session.close)
            notifier = Notifier(config, redis, names, SendContext(session, redis, names))
            redact.install(notifier.secrets())
            consumers.append(notifier.consumer())
            if notifier.groups_in_use:
                loops.append(notifier.flush_forever)
            if (intake := config.intake) is not None:
                redact.install(s for p in intake.producers for s in p.secrets())
                loops.append(lambda: serve_intake(intake, redis, names))
        if "archiver" in roles:
            archiver = Archiver(settings.database_url, names, settings.retention_days)
            consumers += archiver.consumers()
            loops.append(archiver.prune_forever)
            closers.append(archiver.close)
        if "probe" in roles:
            loops.append(Probe(config, redis, names, ProbeContext(http)).run)
        for consumer in consumers:
            await ensure_group(redis, consumer.stream, consumer.group)
            attach(broker, redis, settings, names, consumer)
        log.info("running %s", ", ".join(sorted(roles)))
        try:
            if consumers:
                await broker.start()
            await _until_stopped(stop, loops)
        finally:
            await broker.stop()
            for close in closers:
                await close()
            await redis.aclose()


async def _until_stopped(stop: asyncio.Event, loops: list[Callable[[], Awaitable[None]]]) -> None:
    tasks = [asyncio.ensure_future(loop()) for loop in loops]
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter:
                task.result()  # a service loop only ends by failing: surface it
    finally:
        for task in [waiter, *tasks]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
