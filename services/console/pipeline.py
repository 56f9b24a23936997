"""The pipeline's own health: stream lengths, consumer groups' lag and pending counts,
dead letters, and whether Redis and PostgreSQL answer. Read for ``/api/v1/pipeline``
and the dashboard; one failing part never hides the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.streams import StreamNames

TIMEOUT_S = 2.0
RECENT = 20


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    consumers: int
    pending: int
    lag: int | None  # None: Redis cannot tell (entries were deleted mid-stream)


@dataclass(frozen=True, slots=True)
class Stream:
    name: str
    length: int
    groups: list[Group]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    stream: str
    group: str
    reason: str
    at_ms: int | None


@dataclass(frozen=True, slots=True)
class Reachability:
    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class Pipeline:
    redis: Reachability
    database: Reachability
    streams: list[Stream]
    dead_letters: int
    recent_dead_letters: list[DeadLetter]


def _text(fields: dict[bytes, bytes], name: str) -> str:
    return fields.get(name.encode(), b"").decode(errors="replace")


async def _stream(redis: Redis, key: str) -> Stream:
    length = int(await redis.xlen(key))
    groups = []
    if length or await redis.exists(key):
        for g in await redis.xinfo_groups(key):
            lag = g.get("lag")
            groups.append(
                Group(
                    name=g["name"].decode(),
                    consumers=int(g["consumers"]),
                    pending=int(g["pending"]),
                    lag=None if lag is None else int(lag),
                )
            )
    return Stream(key, length, groups)


async def _dead(redis: Redis, key: str, count: int) -> list[DeadLetter]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrevrange(key, count=count)  # type: ignore[assignment]
    out = []
    for entry_id, fields in entries:
        at = _text(fields, "dlq:at_ms")
        out.append(
            DeadLetter(
                id=entry_id.decode(),
                stream=_text(fields, "dlq:stream"),
                group=_text(fields, "dlq:group"),
                reason=_text(fields, "dlq:reason"),
                at_ms=int(at) if at.isdigit() else None,
            )
        )
    return out


async def _database(pool: AsyncConnectionPool[Any]) -> Reachability:
    try:
        async with asyncio.timeout(TIMEOUT_S), pool.connection() as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure is the answer, not an error of this endpoint
        return Reachability(False, type(exc).__name__ + ": " + str(exc)[:200])
    return Reachability(True)


async def health(
    redis: Redis, names: StreamNames, pool: AsyncConnectionPool[Any], recent: int = RECENT
) -> Pipeline:
    database = await _database(pool)
    keys = [names.results, names.metrics, names.errors, names.alerts, names.deliveries]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            streams = [await _stream(redis, k) for k in keys]
            dead = int(await redis.xlen(names.deadletter))
            recent_dead = await _dead(redis, names.deadletter, recent)
    except (RedisError, OSError, TimeoutError) as exc:
        return Pipeline(Reachability(False, str(exc)[:200]), database, [], 0, [])
    return Pipeline(Reachability(True), database, streams, dead, recent_dead)
