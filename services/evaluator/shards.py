"""Evaluator scale-out over stream shards: route, lease, evaluate, checkpoint per shard.

With ``VIGIL_EVALUATOR_SHARDS`` = P > 1, the public streams stay the contract:
producers keep writing ``{prefix}:results`` / ``metrics`` / ``errors``. A router (one
evaluator process at a time, under a lease) copies each observation to one of P shard
streams, chosen by a stable hash of its tenant (inhibition works within a tenant, so a
tenant's series stay together), in stream order, each under its public entry id
(idempotent routing, see ``Router``).

Each shard is owned by one process at a time through a lease (``SET NX PX``, renewed
every lease/4). Only the owner reads the shard, from the entry id in the shard's
cursor; the shard's series states, cursor and the trim of what it consumed are
committed in one transaction fenced by ``WATCH`` on the lease, so an owner that lost
its lease cannot overwrite its successor. A new owner loads the checkpoint and resumes
at the cursor: a handover neither re-fires nor forgets a ``for`` timer. A shard's keys
share a hash tag, so on Redis Cluster each shard lives in one slot and the shards
spread. An owner is pipelined as the plain evaluator is (see ``ShardWorker``).

Alert events go to the shared alerts stream in the transaction on a single Redis; on a
cluster (another slot) just before it. A crash between the two republishes the same
events on replay; their ids are deterministic and notifier and archiver are
idempotent on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from schemas import AlertEvent, ApplicationError, CheckResult, MetricSample
from services.evaluator.intake import CountingCodec
from services.evaluator.live import Follower, retired
from services.evaluator.observation import Observation, from_error, from_result, from_samples
from services.evaluator.router import RELEASE, Router
from services.evaluator.rulebase import SeriesState
from services.evaluator.service import UNKNOWN_FIELDS, Evaluator
from shared.config import Config
from shared.consumer import StreamRead, lean_reads
from shared.redisclient import raise_if_cancelled
from shared.streams import StreamNames, deadletter_fields

log = logging.getLogger(__name__)
KINDS = ("results", "metrics", "errors")
FOLLOW_S = 1.0  # how often an owner looks for rules changed through the console API
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class ShardWorker:
    """Owns one shard while its lease holds: reads, evaluates, commits, ticks.

    Pipelined as the plain evaluator is (``BatchProcessor.read_ahead`` and
    ``Evaluator.submit``): the next batch is read while this one is evaluated, and each
    batch's transaction commits (in order, through the evaluator's ``CommitChain``) while
    the next one is computed. Each transaction is opened ahead, while the one before it
    is still in Redis: ``WATCH`` on the lease and a ``GET`` that finds it still ours, so
    committing it is one round trip. A failed commit drops the batches computed on top
    of it and ends the worker; the shard is taken again (by this process or another)
    from its checkpoint. Renewing the lease changes it, so it is renewed only between
    batches with nothing in flight (every lease/4), as are ticks and live-config follows.
    """

    def __init__(self, owner: ShardedEvaluator, shard: int) -> None:
        self.owner, self.shard = owner, shard
        names = owner.names
        self.lease_key = names.shard(shard, "evaluator:lease")
        self.cursor_key = names.shard(shard, "evaluator:cursor")
        self.streams = {names.shard(shard, k): k for k in KINDS}
        self.evaluator = Evaluator(owner.config, owner.redis, names, shard=shard)
        self.follower = Follower(self.evaluator)
        self.release = asyncio.Event()  # set: hand the shard over after this batch
        self.reader = lean_reads(owner.redis)  # XREAD as [(stream, ids, fields)]
        self._next: _Transaction | None = None  # opened ahead for the next batch
        self._open: set[_Transaction] = set()  # opened, not yet committed or reset

    async def run(self) -> None:
        o = self.owner
        try:
            await self.evaluator.load()
            raw: dict[bytes, bytes] = await o.redis.hgetall(self.cursor_key)  # type: ignore[misc,assignment]
            await self._loop({s: raw.get(s.encode(), b"0-0") for s in self.streams})
        finally:
            with contextlib.suppress(Exception):
                await self.evaluator.settle()  # what was computed commits, fenced as ever
            for tx in list(self._open):  # dropped ones still hold a watching connection
                await tx.close()
            with contextlib.suppress(RedisError):
                await o.redis.eval(RELEASE, 1, self.lease_key, o.member)  # type: ignore[misc]

    async def _loop(self, cursor: dict[str, bytes]) -> None:
        o = self.owner
        now = time.monotonic()
        renew_at = follow_at = now
        tick_at = now + o.tick_s
        ahead: asyncio.Task[list[StreamRead]] | None = None
        try:
            while not self.release.is_set():
                now = time.monotonic()
                if now >= min(renew_at, follow_at, tick_at):
                    # Between batches, nothing in flight: renew, then follow and tick.
                    if not await self._settled() or not await self._renew():
                        return
                    renew_at = now + o.lease_ms / 4000
                    if now >= follow_at:
                        follow_at = now + FOLLOW_S
                        if not await self._follow():
                            return
                    if now >= tick_at:
                        tick_at = now + o.tick_s
                        if not await self._tick():
                            return
                read = await (ahead or self._read(cursor))
                ahead = None
                if not read:
                    continue
                cursor = {**cursor, **{stream: ids[-1] for stream, ids, _ in read}}
                ahead = asyncio.ensure_future(self._read(cursor))
                if not await self._batch(read, cursor):
                    return
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _read(self, cursor: dict[str, bytes]) -> list[StreamRead]:
        o = self.owner
        got: Any = await self.reader.xread(cursor, count=o.batch_size, block=o.block_ms)  # type: ignore[arg-type]
        return got  # type: ignore[no-any-return]

    async def _batch(self, read: list[StreamRead], cursor: dict[str, bytes]) -> bool:
        o, ev = self.owner, self.evaluator
        tx = self._next or self._open_transaction()
        self._next = None
        if not await tx.armed:
            return False  # the lease moved: the successor owns the shard's state now
        observations: list[Observation] = []
        for stream, ids, fields in read:
            kind = self.streams[stream]
            codec = o.codecs[kind]
            good, bad = codec.decode(ids, fields)
            if unknown := codec.take():
                tx.pipe.hincrby(ev.ignored_key, UNKNOWN_FIELDS, unknown)
            observations += _observations(kind, [m for _, m in good])
            for rejected in bad:
                tx.publish.xadd(o.names.deadletter, deadletter_fields(stream, ev.group, rejected))
        after = ev.evaluate(observations, tx.pipe, time.time(), tx.publish)
        self._queue_cursor(tx.pipe, cursor, [stream for stream, _, _ in read])
        self._next = self._open_transaction()
        tx.handover = self._next.armed
        await ev.submit(tx, after)
        return not ev.stale

    def _open_transaction(self) -> _Transaction:
        tx = _Transaction(self)
        self._open.add(tx)
        tx.done.add_done_callback(lambda _: self._open.discard(tx))
        return tx

    async def _settled(self) -> bool:
        """Wait for the transactions in flight and drop the one opened ahead; False once
        one of them failed."""
        await self.evaluator.settle()
        if self._next is not None:
            await self._next.close()
            self._next = None
        return not self.evaluator.stale

    async def _renew(self) -> bool:
        o = self.owner
        return bool(await o.redis.eval(_RENEW, 1, self.lease_key, o.member, o.lease_ms))  # type: ignore[misc]

    async def _tick(self) -> bool:
        alerts, moved = self.evaluator.plan_tick(time.time())
        return await self._commit(alerts, moved) if moved else True

    async def _follow(self) -> bool:
        """Adopt rules changed through the console API (``live.Follower``), fenced by
        the lease like every other commit of this shard's state."""
        try:
            found = await self.follower.newer()
        except (RedisError, msgspec.ValidationError) as exc:
            log.warning("shard %d: live configuration not adopted: %s", self.shard, exc)
            return True
        if found is None:
            return True
        ev = self.evaluator
        events, changed = retired(ev.engine, found[1], ev.states, time.time())
        if events and not await self._commit(events, changed):
            return False
        self.follower.adopted(*found)
        return True

    async def _commit(self, alerts: list[AlertEvent], moved: dict[str, SeriesState]) -> bool:
        """A tick's or follow's changes, with nothing else in flight."""
        tx = self._open_transaction()
        if not await tx.armed:
            await tx.close()
            return False
        self.evaluator.queue_tick(alerts, moved, tx.pipe, tx.publish)
        try:
            await tx.execute()
        except WatchError:
            return False
        self.evaluator.adopt_tick(alerts, moved)
        return True

    def _queue_cursor(self, pipe: Pipeline, cursor: dict[str, bytes], read: list[str]) -> None:
        pipe.hset(self.cursor_key, mapping=cursor)  # type: ignore[arg-type]
        for stream in read:
            # Only the owner reads a shard and it is past the cursor: drop what it read.
            pipe.xtrim(stream, minid=cursor[stream], approximate=True)


class _Transaction:
    """One commit of a shard's state: a transaction pipeline WATCHing the shard's lease,
    opened (``armed``: WATCH, then GET finds the lease ours) before it is filled, so it
    commits in one round trip; its EXEC fails if the lease changed since. Alert events
    and dead letters go to ``publish``: in the transaction on a single Redis, before it
    on a cluster (another slot)."""

    def __init__(self, worker: ShardWorker) -> None:
        redis = worker.owner.redis
        self.pipe = redis.pipeline(transaction=True)
        self.publish = self.pipe if type(redis) is Redis else redis.pipeline(transaction=False)
        self.armed = asyncio.ensure_future(self._arm(worker.lease_key, worker.owner.member))
        # The next transaction's arming: in place before this one's EXEC, so the watches
        # overlap and no change of the lease can fall between two of them.
        self.handover: asyncio.Future[bool] | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def _arm(self, lease_key: str, member: str) -> bool:
        await self.pipe.watch(lease_key)
        ours = await self.pipe.get(lease_key) == member.encode()
        self.pipe.multi()  # type: ignore[no-untyped-call]
        return ours

    async def execute(self) -> None:
        """Commit (``CommitChain`` calls this once the transaction before it committed)."""
        try:
            if not await self.armed:
                raise WatchError("the shard's lease is no longer ours")
            if self.handover is not None:
                await asyncio.wait([self.handover])  # its outcome is its own batch's
            if self.publish is not self.pipe and len(self.publish):
                await self.publish.execute()
            await self.pipe.execute()
        finally:
            await self.close()

    async def close(self) -> None:
        """Give the connection back (a transaction dropped or never filled)."""
        if not self.armed.done():
            self.armed.cancel()
        await asyncio.gather(self.armed, return_exceptions=True)
        with contextlib.suppress(RedisError):
            await self.pipe.reset()  # type: ignore[no-untyped-call]
        if not self.done.done():
            self.done.set_result(None)


class ShardedEvaluator:
    """Takes a fair share of the shards' leases, runs a worker per shard it holds."""

    def __init__(
        self,
        config: Config,
        redis: Redis,
        names: StreamNames,
        shards: int,
        member: str,
        *,
        lease_ms: int = 10_000,
        batch_size: int = 500,
        block_ms: int = 1000,
        tick_s: float = 5.0,
    ) -> None:
        self.config, self.redis, self.names, self.shards = config, redis, names, shards
        self.member, self.lease_ms, self.batch_size = member, lease_ms, batch_size
        # A read must come back well within the lease, so the lease is renewed in time.
        self.block_ms = min(block_ms, lease_ms // 4)
        self.tick_s = tick_s
        self.members_key = names.key("evaluator:members")
        self.router = Router(self)
        self.codecs: dict[str, CountingCodec[Any]] = {
            "results": CountingCodec(CheckResult),
            "metrics": CountingCodec(MetricSample),
            "errors": CountingCodec(ApplicationError),
        }
        self.workers: dict[int, tuple[ShardWorker, asyncio.Task[None]]] = {}

    def owned(self) -> list[int]:
        return sorted(s for s, (_, task) in self.workers.items() if not task.done())

    async def run(self) -> None:
        router = asyncio.ensure_future(self.router.run())
        try:
            while True:
                raise_if_cancelled()
                try:
                    await self.balance()
                except RedisError as exc:  # an outage: leases lapse, the next round retakes
                    raise_if_cancelled(exc)
                    log.warning("evaluator shard leases: %s", exc)
                await asyncio.sleep(self.lease_ms / 3000)
        finally:
            router.cancel()
            await asyncio.wait([router], timeout=self.block_ms / 1000 + 5)
            await self.stop()

    async def balance(self) -> None:
        """Renew membership; take free shards up to a fair share, hand over the excess."""
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self.members_key, {self.member: now + self.lease_ms})
        pipe.zremrangebyscore(self.members_key, "-inf", now)
        pipe.zcard(self.members_key)
        live = max(1, int((await pipe.execute())[-1]))
        for shard, (_, task) in list(self.workers.items()):
            if task.done():
                del self.workers[shard]
                if not task.cancelled() and (exc := task.exception()) is not None:
                    log.warning("evaluator shard %d stopped: %r", shard, exc)
        fair = math.ceil(self.shards / live)
        owned = self.owned()
        for shard in owned[fair:]:
            self.workers[shard][0].release.set()
        # Start the search at a member-specific place, so members rarely race for one shard.
        start = zlib.crc32(self.member.encode()) % self.shards
        for i in range(self.shards):
            if len(self.workers) >= fair:
                break
            shard = (start + i) % self.shards
            if shard in self.workers:
                continue
            key = self.names.shard(shard, "evaluator:lease")
            if await self.redis.set(key, self.member, nx=True, px=self.lease_ms):
                worker = ShardWorker(self, shard)
                self.workers[shard] = (worker, asyncio.ensure_future(worker.run()))
                log.info("evaluator %s took shard %d", self.member, shard)

    async def stop(self) -> None:
        """Hand every shard over: finish the batch in hand, release the lease."""
        for worker, _ in self.workers.values():
            worker.release.set()
        for _, task in self.workers.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, self.block_ms / 1000 + 5)
        self.workers.clear()
        with contextlib.suppress(RedisError):
            await self.redis.zrem(self.members_key, self.member)


def _observations(kind: str, messages: list[Any]) -> list[Observation]:
    if kind == "metrics":
        return from_samples(messages)
    if kind == "results":
        return [o for m in messages for o in from_result(m)]
    return [from_error(m) for m in messages]
