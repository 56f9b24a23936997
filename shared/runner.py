"""Wire services to Redis, PostgreSQL and each other, and run them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import psycopg
import uvloop
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.archiver.service import Archiver
from services.archiver.sqlite import is_sqlite
from services.evaluator import live as evaluator_live
from services.evaluator.service import Evaluator
from services.evaluator.shards import ShardedEvaluator
from services.notifier import live as notifier_live
from services.notifier import redact
from services.notifier.channels import SendContext
from services.notifier.intake.server import serve as serve_intake
from services.notifier.service import Notifier
from services.probe.monitors import ProbeContext
from services.probe.monitors.base import HttpClients
from services.probe.service import Probe
from shared import metrics, netguard
from shared.config import Config
from shared.consumer import Consumer, attach
from shared.errors import SettingsError
from shared.ops import OpsServer, ReadinessCheck
from shared.redisclient import broker as redis_broker
from shared.redisclient import connected, raise_if_cancelled
from shared.settings import Settings
from shared.streams import StreamNames, ensure_group

log = logging.getLogger(__name__)
ROLES = ("probe", "evaluator", "notifier", "archiver")  # the pipeline: ``vigil run all``
CONSOLE = "console"  # the API and dashboard, run on their own or beside the pipeline
BROKER_LOGGER = "vigil.broker"
LAG_SAMPLE_S = 5.0
T = TypeVar("T")


async def run(
    settings: Settings, config: Config, roles: Iterable[str], stop: asyncio.Event
) -> None:
    """Run the given services in this process until ``stop`` is set or one of them fails."""
    roles = set(roles)
    for role in {"archiver", CONSOLE} & roles:
        if not settings.database_url:
            raise SettingsError(f"the {role} needs VIGIL_DATABASE_URL")
    if settings.evaluator_shards < 1 or (
        settings.evaluator_shards > 1 and settings.evaluator_partitions > 1
    ):
        raise SettingsError(
            "VIGIL_EVALUATOR_SHARDS must be 1 or more, and is not combined with"
            " VIGIL_EVALUATOR_PARTITIONS (shards replace partitions)"
        )
    if settings.evaluator_lease_ms < 100:  # a read waits a quarter of it; 0 would block for ever
        raise SettingsError("VIGIL_EVALUATOR_LEASE_MS must be at least 100")
    names = StreamNames(settings.stream_prefix)
    redis = await connected(settings.redis_url)
    # FastStream's per-batch and per-task lines go to a logger of ours (see BROKER_LOGGER).
    broker = redis_broker(settings.redis_url, logging.getLogger(BROKER_LOGGER))
    consumers: list[Consumer[Any]] = []
    loops: list[Callable[[], Awaitable[None]]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    if "evaluator" in roles and settings.evaluator_shards > 1:
        sharded = ShardedEvaluator(
            config,
            redis,
            names,
            settings.evaluator_shards,
            settings.consumer_name,
            lease_ms=settings.evaluator_lease_ms,
            batch_size=settings.batch_size,
            block_ms=settings.block_ms,
        )
        loops.append(sharded.run)
    elif "evaluator" in roles:
        evaluator = Evaluator(
            config,
            redis,
            names,
            partition=settings.evaluator_partition,
            partitions=settings.evaluator_partitions,
        )
        await evaluator.load()
        consumers += evaluator.consumers()
        closers.append(evaluator.settle)
        loops.append(evaluator.tick_forever)
        follower = evaluator_live.Follower(evaluator)  # rules etc. changed through the API
        await follower.refresh()
        loops.append(follower.follow)
    if "notifier" in roles:
        session = netguard.guarded_session(config.egress, limit=100)
        closers.append(session.close)
        notifier = Notifier(
            config,
            redis,
            names,
            SendContext(session, redis, names),
        )
        redact.install(notifier.secrets())
        consumers.append(notifier.consumer())
        loops.append(notifier_live.Follower(notifier).follow)  # console API changes
        if notifier.groups_in_use:
            loops.append(notifier.flush_forever)
        if (intake := config.intake) is not None:
            redact.install(s for p in intake.producers for s in p.secrets())
            loops.append(lambda: serve_intake(intake, redis, names))
    if "archiver" in roles:
        archiver = Archiver(
            settings.database_url,
            names,
            config.archive,
            settings.retention_days,
            redis=redis,
            consumer_name=settings.consumer_name,
            reclaim_idle_ms=settings.reclaim_idle_ms,
            batch_size=settings.archiver_batch_size,
        )
        consumers += archiver.consumers()
        loops.append(archiver.housekeep_forever)
        loops.append(archiver.roll_up_forever)
        closers.append(archiver.close)
    if "probe" in roles:
        # The user agent names the worker, so a target can tell which one called.
        agent = HttpClients(user_agent=f"vigil-probe ({settings.consumer_name})")
        probe_ctx = ProbeContext(redis, names, agent)
        ping = ("0.0.0.0", settings.ping_port) if settings.ping_port is not None else None
        probe = Probe(config, redis, names, probe_ctx, ping, settings.probe_tiers)
        loops.append(probe.run)
        closers.append(probe_ctx.aclose)
    if CONSOLE in roles and settings.console_port is not None:
        # Imported here: the pipeline's workers need not load the web framework.
        from services.console.service import serve as serve_console

        loops.append(lambda: serve_console(settings, config, redis, names))
    for consumer in consumers:
        await ensure_group(redis, consumer.stream, consumer.group)
        process = attach(broker, redis, settings, names, consumer)
        if consumer.submit is not None:  # pipelined: reads ahead itself
            count = consumer.batch_size or settings.batch_size
            read = partial(process.read_ahead, settings.consumer_name, count)
            loops.append(partial(read, settings.block_ms))
    if consumers:
        loops.append(lambda: sample_lag(settings.redis_url, consumers))
        loops.append(lambda: revive_subscribers(redis, broker))
    if settings.ops_port is not None:
        checks = readiness_checks(redis, broker, settings if "archiver" in roles else None)
        ops = OpsServer(checks, settings.ops_host, settings.ops_port)
        loops.append(ops.serve)
    settle_heap()
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


def settle_heap() -> None:
    """Keep the cyclic GC off the start-up heap and make its young passes rarer.

    Imports and loaded state leave ~100k long-lived objects that every full pass
    walked again: a third of the evaluator's CPU per observation. The hot paths
    allocate few cycles (msgspec Structs with gc=False), so rarer passes cost little.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def readiness_checks(
    redis: Redis, broker: RedisBroker, with_database: Settings | None
) -> dict[str, ReadinessCheck]:
    async def redis_ok() -> None:
        await redis.ping()

    async def consumers_ok() -> None:
        if not all(sub.running for sub in broker.subscribers):
            raise RuntimeError("a stream subscriber is not running")

    checks: dict[str, ReadinessCheck] = {"redis": redis_ok, "consumers": consumers_ok}
    # An embedded SQLite file needs no server to be reachable.
    if with_database is not None and not is_sqlite(with_database.database_url):
        url = with_database.database_url

        async def postgres_ok() -> None:
            async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
                await conn.execute("SELECT 1")

        checks["postgres"] = postgres_ok
    return checks


async def sample_lag(
    redis_url: str, consumers: list[Consumer[Any]], every_s: float = LAG_SAMPLE_S
) -> None:
    """Keep the lag, pending and length gauges current for the streams this process reads.

    Its own client, so that sampling never queues behind (or among) the consumers' commands.
    """
    streams = sorted({c.stream for c in consumers})
    async with await connected(redis_url) as redis:
        while True:
            raise_if_cancelled()  # the cluster client's start-up can swallow a cancel
            await asyncio.sleep(every_s)
            for stream in streams:
                try:
                    groups = await redis.xinfo_groups(stream)
                    length = await redis.xlen(stream)
                except RedisError as exc:
                    raise_if_cancelled(exc)
                    log.debug("lag sample of %s failed: %s", stream, exc)
                    continue
                metrics.STREAM_LENGTH.labels(stream).set(length)
                for group in groups:
                    name = group["name"].decode()
                    metrics.CONSUMER_PENDING.labels(stream, name).set(group["pending"])
                    if group.get("lag") is not None:
                        metrics.CONSUMER_LAG.labels(stream, name).set(group["lag"])


async def revive_subscribers(redis: Redis, broker: RedisBroker, every_s: float = 1.0) -> None:
    """Restart a subscriber that stopped because its group is gone (Redis came back
    without its data: FastStream stops the subscriber on NOGROUP), after re-creating the
    group at the start of the stream, so nothing published since is skipped."""
    while True:
        await asyncio.sleep(every_s)
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a cancel redis-py swallowed: stop
            raise asyncio.CancelledError
        for sub in broker.subscribers:
            if sub.running:
                continue
            stream = sub.stream_sub  # type: ignore[attr-defined]
            try:
                await ensure_group(redis, stream.name, stream.group)
                await sub.start()
                log.warning("group %s on %s re-created; consuming again", stream.group, stream.name)
            except (OSError, RedisError) as exc:  # Redis still away: next round
                log.debug("cannot revive the subscriber of %s yet: %s", stream.name, exc)


async def _until_stopped(stop: asyncio.Event, loops: list[Callable[[], Awaitable[None]]]) -> None:
    tasks = [asyncio.ensure_future(loop()) for loop in loops]
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter:
                task.result()  # a service loop only ends by failing: surface it
    finally:
        waiter.cancel()
        await _cancel_all(tasks)


async def _cancel_all(tasks: Sequence[asyncio.Future[None]], every_s: float = 10.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that ignored it: the
    cluster client can swallow a cancel that lands mid-command, and one task that
    never ends would keep the whole process from stopping."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
        if pending:
            log.warning("service tasks ignored a stop, cancelling again: %s", pending)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the services' event loop: uvloop. Its wake-ups from other threads
    are cheaper, and the notifier's HTTP client (pyreqwest) completes every request from
    its Rust thread: ~+40 % deliveries/s and ~20 % less CPU per delivery than asyncio's
    loop (docs/performance.md, "Notifier")."""
    return uvloop.run(main)
