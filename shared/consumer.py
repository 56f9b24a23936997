"""Batch consumption of one stream by one consumer group, through FastStream.

Two subscribers serve each (stream, group): one reads new entries in batches
(XREADGROUP COUNT), the other reclaims entries left pending by a dead worker
(XAUTOCLAIM after ``reclaim_idle_ms``). Both hand decoded messages to the same
handler. The handler queues its Redis writes on a transaction pipeline; the
adapter adds the dead letters and the XACK of the whole batch and executes it,
so outputs and acknowledgement land together or not at all. An entry that
cannot be decoded, or that was delivered ``max_deliveries`` times without
being acknowledged, goes to the dead-letter stream with the reason. While a
handler works on a batch, its entries are re-claimed now and then (XCLAIM
JUSTID: idle time reset, delivery count kept), so a slow batch (a notifier
retrying a failing channel) is not reclaimed and handled twice while its worker
is alive; once the worker dies, they go idle and are reclaimed as usual.

A consumer with ``submit`` is pipelined: ``read_ahead`` (not FastStream) reads new
entries one batch ahead, and each batch's transaction goes to ``submit``, which commits
the transactions in order; the reader does not wait for its batch's commit, only for the
one before, so Redis reads and commits while Python computes the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol

from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from shared import metrics
from shared.redisclient import raise_if_cancelled
from shared.settings import Settings
from shared.streams import Codec, M, Rejected, StreamNames, deadletter_fields, ensure_group

log = logging.getLogger(__name__)

AfterCommit = Callable[[], None]
Handler = Callable[[list[tuple[bytes, M]], Pipeline], Awaitable[AfterCommit | None]]
# Sends a batch's transaction, in order after the earlier ones, and calls the
# after-commit once it committed; returns, once the batch before it has settled, the
# task that commits this one.
Submit = Callable[[Pipeline, AfterCommit], Awaitable["asyncio.Task[None]"]]
READ_RETRY_S = 1.0  # between reads while Redis is away

# XACK of a whole batch with its ids as one argument: redis-py packs every argument in
# Python (~0.65 µs an id, as much as evaluating an observation), Lua splits them in C.
_XACK_PACKED = """
local ids, n, acked = {}, 0, 0
for id in string.gmatch(ARGV[2], '%S+') do
  n = n + 1
  ids[n] = id
  if n == 1000 then  -- unpack() is bounded by Lua's C stack
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, 1, n))
    n = 0
  end
end
if n > 0 then acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, 1, n)) end
return acked
"""


def xack_packed(pipe: Pipeline, stream: str, group: str, ids: list[bytes]) -> None:
    """Queue ``XACK stream group *ids`` as one script call; EVAL, not EVALSHA: inside
    MULTI a NOSCRIPT could not be retried, and Redis caches the compiled script."""
    pipe.eval(_XACK_PACKED, 1, stream, group, b" ".join(ids))


class Transaction(Protocol):
    """What ``CommitChain`` commits: a transaction pipeline, or anything that sends one."""

    async def execute(self) -> Any: ...


class Dropped(Exception):
    """A transaction not sent: it was computed on top of one that did not commit."""


class CommitChain:
    """A pipelined consumer's ``submit``: batch transactions committed one at a time, in
    the order they were submitted, while the next batch is computed.

    ``dependent``: each batch was computed on top of the one before (the evaluator's
    in-place states), so once one fails the later ones are dropped (``Dropped``) until
    ``settle``. Otherwise each stands alone (the archiver's acknowledgements: a failed
    one stays pending and is reclaimed). ``failed`` runs on any failure.
    """

    def __init__(
        self,
        what: str,
        *,
        dependent: bool = False,
        failed: Callable[[], None] | None = None,
    ) -> None:
        self.what, self.dependent, self.failed = what, dependent, failed
        self._tail: asyncio.Task[None] | None = None  # the last transaction submitted

    async def submit(self, pipe: Transaction, after: AfterCommit | None) -> asyncio.Task[None]:
        """Queue ``pipe`` after the earlier transactions; return the task committing it
        once the one before it has settled (so at most one runs while one more is
        computed). Nothing awaits before it is queued."""
        previous = self._tail
        committing = self._tail = asyncio.create_task(self._commit(previous, pipe, after))
        committing.add_done_callback(self._log_failure)
        if previous is not None:
            await asyncio.wait([previous])  # its failure is its own batch's (logged there)
        return committing

    async def _commit(
        self, previous: asyncio.Task[None] | None, pipe: Transaction, after: AfterCommit | None
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
                if self.dependent and (previous.cancelled() or previous.exception()):
                    raise Dropped("an earlier batch's transaction failed")
            await pipe.execute()
        except BaseException:
            if self.failed is not None:
                self.failed()
            raise
        if after is not None:
            after()

    async def settle(self) -> None:
        """Wait until every submitted transaction has settled (committed or failed);
        later submissions no longer depend on those."""
        if (tail := self._tail) is not None:
            await asyncio.wait([tail])
            if self._tail is tail:
                self._tail = None

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s: a batch's transaction failed: %s", self.what, exc)


@dataclass(frozen=True, slots=True)
class Consumer(Generic[M]):
    """What a service consumes: a stream, as a group, decoded as a type, handled by a function."""

    stream: str
    group: str
    codec: Codec[M]
    handle: Handler[M]
    # Called when a batch the handler queued could not be committed (the transaction
    # failed, or its outcome is unknown): the handler's state may be behind Redis.
    abort: Callable[[], None] | None = None
    submit: Submit | None = None  # set: pipelined (see the module's docstring)
    batch_size: int | None = None  # entries per read; None: the process's VIGIL_BATCH_SIZE


StreamRead = tuple[str, list[bytes], list[dict[bytes, bytes]]]  # a stream's entries: ids, fields


def lean_reads(redis: Redis) -> Redis:
    """A client on the same connections whose XREAD and XREADGROUP replies are
    ``[(stream, ids, fields)]`` for each stream with entries: redis-py's own reply
    (tuples, then dicts pair by pair) cost more than decoding the entries. A cluster
    client keeps its usual replies, reshaped the same way."""
    if type(redis) is not Redis:
        return _UsualReads(redis)  # type: ignore[return-value]
    lean = Redis(connection_pool=redis.connection_pool)
    for command in ("XREAD", "XREADGROUP"):
        lean.set_response_callback(command, _lean_reply)
    return lean


def _lean_reply(response: Any, **_options: Any) -> list[StreamRead]:
    return [
        (_name(stream), [e[0] for e in entries], [_fields(e[1]) for e in entries])
        for stream, entries in _per_stream(response)
    ]


def _per_stream(response: Any) -> list[tuple[Any, list[Any]]]:
    # RESP3 answers a map {stream: entries}, RESP2 a list of [stream, entries]; None: nothing.
    pairs = response.items() if isinstance(response, dict) else response or ()
    return [(stream, entries) for stream, entries in pairs if entries]


def _name(stream: bytes | str) -> str:
    return stream.decode() if isinstance(stream, bytes) else stream


def _fields(flat: list[bytes] | None) -> dict[bytes, bytes]:
    if flat is not None and len(flat) == 2:
        return {flat[0]: flat[1]}  # the usual entry: one field
    it = iter(flat or ())
    return dict(zip(it, it, strict=True))


class _UsualReads:
    """redis-py's usual XREAD and XREADGROUP replies, shaped as ``_lean_reply``'s."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def xread(self, *args: Any, **kwargs: Any) -> list[StreamRead]:
        return _usual(await self.redis.xread(*args, **kwargs))

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> list[StreamRead]:
        return _usual(await self.redis.xreadgroup(*args, **kwargs))


def _usual(response: Any) -> list[StreamRead]:
    return [
        (_name(stream), [i for i, _ in entries], [f or {} for _, f in entries])
        for stream, entries in _per_stream(response)
    ]


async def _raw_parser(message: Mapping[str, Any], _original: Any) -> RedisBatchStreamMessage:
    # The built-in parser expects FastStream's own envelope and chokes on plain
    # XADD entries; keep the raw entries and decode them ourselves.
    return RedisBatchStreamMessage(
        raw_message=message, body=b"", consumer=FAKE_CONSUMER, group=None
    )


async def _no_decode(_message: Any, _original: Any) -> None:
    return None


class BatchProcessor(Generic[M]):
    """Decode, dead-letter, handle and acknowledge one batch of entries."""

    def __init__(
        self,
        redis: Redis,
        names: StreamNames,
        consumer: Consumer[M],
        max_deliveries: int,
        holder: tuple[str, float] | None = None,
    ) -> None:
        """``holder``: (consumer name, seconds between re-claims) of batches in hand."""
        self.redis, self.names, self.consumer = redis, names, consumer
        self.max_deliveries = max_deliveries
        self.holder = holder
        self._holding: set[asyncio.Task[None]] = set()  # referenced until they end

    async def __call__(
        self,
        ids: list[bytes],
        entries: list[dict[bytes, bytes]],
        reclaimed: bool = False,
        *,
        ahead: bool = False,
    ) -> None:
        """Handle one batch and commit it; with ``ahead`` (``read_ahead``, a pipelined
        consumer) return before it committed, once the batch before it has."""
        c = self.consumer
        started = time.perf_counter()
        good, bad = c.codec.decode(ids, entries)
        handled = False
        try:
            if reclaimed and good:
                good, poison = await self._split_poison(good, dict(zip(ids, entries, strict=True)))
                bad += poison
            pipe = self.redis.pipeline(transaction=True)
            async with self._held(ids):
                after = await c.handle(good, pipe) if good else None
            handled = bool(good)
            for rejected in bad:
                log.warning("dead-lettered %s %s: %s", c.stream, rejected.entry_id, rejected.reason)
                pipe.xadd(self.names.deadletter, deadletter_fields(c.stream, c.group, rejected))
            xack_packed(pipe, c.stream, c.group, ids)
            if c.submit is None:
                await pipe.execute()
        except BaseException as exc:
            metrics.HANDLER_ERRORS.labels(c.stream, c.group, type(exc).__name__).inc()
            if handled and c.abort is not None:
                c.abort()  # its changes are in memory but will never be committed
            raise
        if c.submit is None:
            self._committed(ids, bad, after, started)
            return
        committing = await c.submit(pipe, lambda: self._committed(ids, bad, after, started))
        if not ahead:
            try:
                await committing
            except Exception as exc:
                metrics.HANDLER_ERRORS.labels(c.stream, c.group, type(exc).__name__).inc()
                raise

    def _committed(
        self, ids: list[bytes], bad: list[Rejected], after: AfterCommit | None, started: float
    ) -> None:
        c = self.consumer
        if after is not None:
            after()
        metrics.CONSUMED.labels(c.stream, c.group).inc(len(ids))
        metrics.BATCH_SIZE.labels(c.stream, c.group).observe(len(ids))
        metrics.HANDLER_SECONDS.labels(c.stream, c.group).observe(time.perf_counter() - started)
        for rejected in bad:
            metrics.DEAD_LETTERS.labels(c.stream, c.group, rejected.kind).inc()

    async def read_ahead(self, consumer_name: str, count: int, block_ms: int) -> None:
        """Read new entries and handle them, the next read already running in Redis while
        this batch is handled (a pipelined consumer's reader, instead of FastStream's)."""
        c = self.consumer
        reader = lean_reads(self.redis)

        async def read() -> Any:
            streams: Any = {c.stream: ">"}
            return await reader.xreadgroup(
                c.group, consumer_name, streams, count=count, block=block_ms
            )

        ahead = asyncio.create_task(read())
        try:
            while True:
                try:
                    got = await ahead
                except RedisError as exc:
                    raise_if_cancelled(exc)
                    log.warning("%s: cannot read: %s", c.stream, exc)
                    await asyncio.sleep(READ_RETRY_S)
                    await self._recreate_group(exc)
                    ahead = asyncio.create_task(read())
                    continue
                raise_if_cancelled()  # a stop redis-py swallowed while the read waited
                ahead = asyncio.create_task(read())
                for _, ids, entries in got:
                    try:
                        await self(ids, entries, ahead=True)
                    except Exception:  # as FastStream does: logged, the batch stays pending
                        log.exception("%s: a batch failed; it stays pending", c.stream)
        finally:
            ahead.cancel()

    async def _recreate_group(self, exc: RedisError) -> None:
        """Redis came back without its data: start the group again at the stream's start."""
        if "NOGROUP" in str(exc):
            with contextlib.suppress(RedisError):
                await ensure_group(self.redis, self.consumer.stream, self.consumer.group)

    @contextlib.asynccontextmanager
    async def _held(self, ids: list[bytes]) -> AsyncIterator[None]:
        if self.holder is None or not ids:
            yield
            return
        # Stopped by an event, not cancelled: redis-py can swallow a cancel that lands in
        # a command, and a batch awaiting such a task would hang with its entries held.
        done = asyncio.Event()
        task = asyncio.create_task(self._hold(ids, *self.holder, done))
        self._holding.add(task)
        task.add_done_callback(self._holding.discard)
        try:
            yield
        finally:
            done.set()

    async def _hold(
        self, ids: list[bytes], consumer: str, every_s: float, done: asyncio.Event
    ) -> None:
        c = self.consumer
        claim: list[Any] = list(ids)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every_s)
            if done.is_set():
                return
            try:
                await self.redis.xclaim(c.stream, c.group, consumer, 0, claim, justid=True)
            except RedisError as exc:  # Redis away: the batch will fail or be reclaimed
                log.warning("%s: cannot hold a batch in hand: %s", c.stream, exc)

    async def _split_poison(
        self, good: list[tuple[bytes, M]], fields: dict[bytes, dict[bytes, bytes]]
    ) -> tuple[list[tuple[bytes, M]], list[Rejected]]:
        c = self.consumer
        pending = await self.redis.xpending_range(
            c.stream, c.group, min=good[0][0], max=good[-1][0], count=len(good)
        )
        times = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        keep = [g for g in good if times.get(g[0], 1) <= self.max_deliveries]
        poison = [
            Rejected(
                entry_id,
                fields[entry_id],
                f"not acknowledged after {times[entry_id]} deliveries",
                kind="poison",
            )
            for entry_id, _ in good
            if times.get(entry_id, 1) > self.max_deliveries
        ]
        return keep, poison


def attach(
    broker: RedisBroker, redis: Redis, settings: Settings, names: StreamNames, consumer: Consumer[M]
) -> BatchProcessor[M]:
    """Register the reading and the reclaiming subscriber of ``consumer`` on ``broker``;
    a pipelined consumer's reading is the returned processor's ``read_ahead``."""
    # Re-claim well within the reclaimers' idle time, so they never take a batch in hand.
    holder = (settings.consumer_name, settings.reclaim_idle_ms / 1000 / 4)
    process = BatchProcessor(redis, names, consumer, settings.max_deliveries, holder)
    # Export 0 before the first dead letter, so a rate over the scraped counter sees it rise.
    for kind in ("undecodable", "poison"):
        metrics.DEAD_LETTERS.labels(consumer.stream, consumer.group, kind)
    common: dict[str, Any] = {
        "group": consumer.group,
        "consumer": settings.consumer_name,
        "batch": True,
        "max_records": consumer.batch_size or settings.batch_size,
    }
    options: dict[str, Any] = {
        "parser": _raw_parser,
        "decoder": _no_decode,
        "ack_policy": AckPolicy.MANUAL,
    }

    async def on_batch(_body: Any, message: Any = Context("message")) -> None:
        raw = message.raw_message
        await process(raw["message_ids"], raw["data"])

    async def on_reclaimed(_body: Any, message: Any = Context("message")) -> None:
        raw = message.raw_message
        await process(raw["message_ids"], raw["data"], reclaimed=True)

    if consumer.submit is None:
        broker.subscriber(
            stream=StreamSub(consumer.stream, polling_interval=settings.block_ms, **common),
            **options,
        )(on_batch)
    broker.subscriber(
        stream=StreamSub(
            consumer.stream,
            min_idle_time=settings.reclaim_idle_ms,
            polling_interval=min(settings.reclaim_idle_ms, 5000),
            **common,
        ),
        **options,
    )(on_reclaimed)
    return process
