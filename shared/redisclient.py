"""One way to open Redis: a single server, or a Redis Cluster when the URL says so.

``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names any node of a
Redis Cluster: the client discovers the others and routes each command by its key's
slot. The mode lives in the URL, so every process and tool that is handed the URL
follows it, with no second setting to keep in step.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from faststream.redis import RedisBroker, RedisClusterBroker
from redis.asyncio import Redis, RedisCluster

CLUSTER_SUFFIX = "+cluster"
GRACE_S = 10.0


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme.endswith(CLUSTER_SUFFIX)


def plain_url(url: str) -> str:
    """The URL redis-py understands: the scheme without ``+cluster``, no database."""
    parts = urlsplit(url)
    if not parts.scheme.endswith(CLUSTER_SUFFIX):
        return url
    # A cluster has only database 0, and redis-py's cluster client rejects a path.
    scheme = parts.scheme.removesuffix(CLUSTER_SUFFIX)
    return urlunsplit((scheme, parts.netloc, "", parts.query, ""))


def connect(url: str) -> Redis:
    """A client for ``url``. A cluster client answers the same commands for keys of one
    slot, which is all Vigil sends together; typed as ``Redis`` so callers need not care."""
    if is_cluster(url):
        return cast(Redis, RedisCluster.from_url(plain_url(url)))
    return Redis.from_url(url)


async def connected(url: str) -> Redis:
    """``connect(url)``, with a cluster client's slot map loaded before first use.

    redis-py queues a cluster transaction's commands through a short-lived event loop in
    a thread; were the slot map loaded there, its connections would outlive that loop
    and fail later with "Event loop is closed".
    """
    return await ready(connect(url))


async def ready(client: Redis) -> Redis:
    """Load a cluster client's slot map now, in the running loop (see ``connected``)."""
    if isinstance(client, RedisCluster):
        await client.initialize()
    return client


def raise_if_cancelled(exc: BaseException | None = None) -> None:
    """Raise ``CancelledError`` if this task was asked to stop.

    The cluster client can swallow a cancel that lands mid-command (or turn it into a
    ``RedisError``); a loop that survives Redis errors checks here so it still stops.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        raise asyncio.CancelledError from exc


def broker(url: str, logger: logging.Logger) -> RedisBroker:
    """FastStream's broker for ``url``: its cluster broker reads streams by key slot too.

    On stop it lets the batches in hand finish and acknowledge (up to GRACE_S), rather
    than leaving them pending for another worker to reclaim after the idle time.
    """
    options: dict[str, Any] = {
        "logger": logger,
        "log_level": logging.DEBUG,
        "graceful_timeout": GRACE_S,
    }
    if is_cluster(url):
        return RedisClusterBroker(plain_url(url), **options)
    return RedisBroker(url, **options)
