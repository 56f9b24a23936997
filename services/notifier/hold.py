"""Keep a slow batch's stream entries from being reclaimed while this worker is alive.

Rate-limit queues and retry back-offs can hold a batch for minutes, and the
reclaimer hands entries idle for ``reclaim_idle_ms`` (60 s by default) to another
worker, which would send what this one is still sending. While a batch is being
handled its entries are XCLAIMed to their owner every ``every_s`` with JUSTID,
which resets their idle time without counting a delivery. A dead worker refreshes
nothing, so its entries are reclaimed as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def held(
    redis: Redis, stream: str, group: str, ids: list[bytes], every_s: float
) -> AsyncIterator[None]:
    keeper = asyncio.create_task(_keep(redis, stream, group, ids, every_s))
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def _keep(redis: Redis, stream: str, group: str, ids: list[bytes], every_s: float) -> None:
    owner: str | None = None
    while ids:
        await asyncio.sleep(every_s)
        try:
            if owner is None:
                pending = await redis.xpending_range(stream, group, ids[0], ids[0], 1)
                if not pending:
                    return  # reclaimed or acknowledged meanwhile: nothing to keep
                name = pending[0]["consumer"]
                owner = name.decode() if isinstance(name, bytes) else str(name)
            await redis.xclaim(stream, group, owner, 0, list(ids), justid=True)
        except (RedisError, OSError) as exc:
            log.warning("%s: cannot refresh pending entries: %s", stream, exc)
