"""Stream names, the entry codec and the dead-letter format.

Contract (see ``schemas/README.md``): every entry has a field ``data`` holding
one JSON message; any other fields are headers and are kept but not interpreted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from schemas import Message

M = TypeVar("M", bound=Message)
DATA = b"data"
DEADLETTER_MAXLEN = 1_000_000


@dataclass(frozen=True, slots=True)
class StreamNames:
    """Every stream key, under one prefix; the braces keep them in one cluster slot.

    Every script and transaction outside the evaluator shards touches only these keys,
    so each runs on one Redis Cluster node.
    """

    prefix: str = "vigil"

    def _key(self, name: str) -> str:
        return f"{{{self.prefix}}}:{name}"

    @property
    def results(self) -> str:
        return self._key("results")

    @property
    def metrics(self) -> str:
        return self._key("metrics")

    @property
    def errors(self) -> str:
        return self._key("errors")

    @property
    def alerts(self) -> str:
        return self._key("alerts")

    @property
    def deliveries(self) -> str:
        return self._key("deliveries")

    @property
    def deadletter(self) -> str:
        return self._key("deadletter")

    def key(self, name: str) -> str:
        """A non-stream key under the same prefix (state, schedules, idempotency)."""
        return self._key(name)

    def shard(self, shard: int, name: str) -> str:
        """A key of one evaluator stream shard. Each shard has its own hash tag, so on a
        Redis Cluster the shards spread over slots while a shard's keys (its streams,
        state, cursor, lease), which one transaction touches together, share one."""
        return f"{{{self.prefix}:shard{shard}}}:{name}"


Fields = dict[FieldT, EncodableT]


def encode(message: Message) -> Fields:
    return {DATA: msgspec.json.encode(message)}


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry that could not be decoded, with the reason it goes to the dead letters."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    reason: str
    kind: str = "undecodable"  # undecodable | poison | undeliverable: the metric label


class Codec(Generic[M]):
    """Decodes stream entries into one message type; never raises on bad input."""

    def __init__(self, kind: type[M]) -> None:
        self.kind = kind
        self._decoder = msgspec.json.Decoder(kind)

    def decode(
        self, ids: list[bytes], entries: list[dict[bytes, bytes]]
    ) -> tuple[list[tuple[bytes, M]], list[Rejected]]:
        good: list[tuple[bytes, M]] = []
        bad: list[Rejected] = []
        for entry_id, fields in zip(ids, entries, strict=True):
            body = fields.get(DATA)
            if body is None:
                bad.append(Rejected(entry_id, fields, "entry has no 'data' field"))
                continue
            try:
                good.append((entry_id, self._decoder.decode(body)))
            except msgspec.DecodeError as exc:
                bad.append(Rejected(entry_id, fields, f"{self.kind.__name__}: {exc}"))
        return good, bad


def deadletter_fields(stream: str, group: str, rejected: Rejected) -> Fields:
    """The original fields plus ``dlq:*`` fields saying where it came from and why."""
    fields: Fields = {k: v for k, v in rejected.fields.items()}
    return fields | {
        "dlq:stream": stream,
        "dlq:group": group,
        "dlq:entry_id": rejected.entry_id,
        "dlq:reason": rejected.reason[:2000],
        "dlq:at_ms": str(int(time.time() * 1000)),
    }


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the consumer group at the start of the stream, so no backlog is skipped."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
