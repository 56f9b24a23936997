"""Read a range of the input streams back, in entry-id order, for the dry-run."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from schemas import CheckResult, MetricSample
from services.evaluator.observation import Observation, from_result, from_sample
from shared.streams import Codec, StreamNames

CHUNK = 1000


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


async def _entries(
    redis: Redis, stream: str, start: str, end: str
) -> AsyncIterator[tuple[bytes, dict[bytes, bytes]]]:
    lower = start
    while True:
        chunk: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
            stream, min=lower, max=end, count=CHUNK
        )
        for entry in chunk:
            yield entry
        if len(chunk) < CHUNK:
            return
        lower = "(" + chunk[-1][0].decode()  # exclusive: the next entry after the last one


async def observations(redis: Redis, names: StreamNames, start: str, end: str) -> list[Observation]:
    """Results and metrics between two entry ids, merged by entry id; undecodable entries
    are skipped (the running evaluator dead-letters them)."""
    results, metrics = Codec(CheckResult), Codec(MetricSample)
    tagged: list[tuple[tuple[int, int], list[Observation]]] = []
    async for entry_id, fields in _entries(redis, names.results, start, end):
        good, _ = results.decode([entry_id], [fields])
        tagged += [(_id(entry_id), list(from_result(r))) for _, r in good]
    async for entry_id, fields in _entries(redis, names.metrics, start, end):
        good_m, _ = metrics.decode([entry_id], [fields])
        tagged += [(_id(entry_id), [from_sample(m)]) for _, m in good_m]
    tagged.sort(key=lambda t: t[0])
    return [o for _, group in tagged for o in group]
