"""Trim the Redis streams to the replay window with XTRIM MINID, never removing an
entry that some consumer group has not acknowledged or not yet read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

StreamId = tuple[int, int]


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def fmt(entry_id: StreamId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


async def group_floor(redis: Redis, stream: str) -> StreamId | None:
    """The lowest id some group still needs: its oldest pending entry, else the
    entry after its last delivered one. None when the stream has no groups."""
    floor: StreamId | None = None
    for group in await redis.xinfo_groups(stream):
        name = group["name"]
        # Re-checked in the summary: a consumer may acknowledge in between ("min" is None).
        summary = await redis.xpending(stream, name) if int(group["pending"]) else None
        if summary is not None and summary["min"] is not None:
            needed = parse_id(summary["min"])
        else:
            last = parse_id(group["last-delivered-id"])
            needed = (last[0], last[1] + 1)
        floor = needed if floor is None else min(floor, needed)
    return floor


@dataclass(frozen=True, slots=True)
class Trim:
    stream: str
    minid: str
    entries: int  # how many go (counted for a dry run, reported by XTRIM otherwise)


async def safe_minid(redis: Redis, stream: str, now_ms: int, window_ms: int) -> StreamId:
    wanted: StreamId = (max(0, now_ms - window_ms), 0)
    floor = await group_floor(redis, stream)
    return wanted if floor is None else min(wanted, floor)


async def count_before(redis: Redis, stream: str, minid: StreamId, page: int = 10_000) -> int:
    count, start = 0, "-"
    while True:
        entries: list[tuple[bytes, Any]] = await redis.xrange(  # type: ignore[assignment]
            stream, min=start, max=f"({fmt(minid)}", count=page
        )
        count += len(entries)
        if len(entries) < page:
            return count
        start = "(" + entries[-1][0].decode()


async def trim(
    redis: Redis, streams: list[str], now_ms: int, window_ms: int, *, dry_run: bool = False
) -> list[Trim]:
    out = []
    for stream in streams:
        if not await redis.exists(stream):
            continue
        minid = await safe_minid(redis, stream, now_ms, window_ms)
        if dry_run:
            gone = await count_before(redis, stream, minid)
        else:
            gone = int(await redis.xtrim(stream, minid=fmt(minid), approximate=False))
        out.append(Trim(stream, fmt(minid), gone))
    return out
