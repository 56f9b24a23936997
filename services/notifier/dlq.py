"""Dead-lettered alert events: list them and re-drive them onto the alerts stream.

A re-driven event keeps its event id, so channels that already got it are
skipped by the idempotency record; only the failed ones are tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from shared.streams import DATA, StreamNames

Entries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class DeadAlert:
    id: str
    channel: str
    reason: str
    at_ms: int
    data: bytes


def _text(fields: dict[bytes, bytes], key: bytes) -> str:
    return fields.get(key, b"").decode(errors="replace")


async def dead_alerts(redis: Redis, names: StreamNames, limit: int = 1000) -> list[DeadAlert]:
    """Dead letters that came from the alerts stream, oldest first (at most ``limit``)."""
    found: list[DeadAlert] = []
    start = "-"
    while len(found) < limit:
        page = cast(Entries, await redis.xrange(names.deadletter, min=start, count=500))
        for entry_id, fields in page:
            if _text(fields, b"dlq:stream") == names.alerts and DATA in fields:
                found.append(
                    DeadAlert(
                        entry_id.decode(),
                        _text(fields, b"channel"),
                        _text(fields, b"dlq:reason"),
                        int(fields.get(b"dlq:at_ms", b"0")),
                        fields[DATA],
                    )
                )
        if len(page) < 500:
            break
        start = "(" + page[-1][0].decode()
    return found[:limit]


async def redrive(redis: Redis, names: StreamNames, ids: list[str] | None = None) -> list[str]:
    """Put the given dead alerts (all when ``ids`` is None) back on the alerts stream and
    remove them from the dead letters, in one transaction; returns the ids re-driven."""
    dead = await dead_alerts(redis, names, limit=1_000_000)
    chosen = [d for d in dead if ids is None or d.id in ids]
    if not chosen:
        return []
    pipe = redis.pipeline(transaction=True)
    for d in chosen:
        pipe.xadd(names.alerts, {DATA: d.data, b"redriven_from": d.id.encode()})
    pipe.xdel(names.deadletter, *[d.id for d in chosen])
    await pipe.execute()
    return [d.id for d in chosen]
