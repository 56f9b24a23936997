"""Evaluator scale-out over stream shards: route, lease, evaluate, checkpoint per shard.

With ``VIGIL_EVALUATOR_SHARDS`` = P > 1, the public streams stay the contract:
producers keep writing ``{prefix}:results`` / ``metrics`` / ``errors``. A router (one
evaluator process at a time, under a lease) copies each observation to one of P shard
streams, chosen by a stable hash of its tenant (inhibition works within a tenant, so a
tenant's series stay together), in stream order, each under its public entry id
(idempotent routing, see ``Router``).

Each shard is owned by one process at a time through a lease (``SET NX PX``, renewed
each read). Only the owner reads the shard, from the entry id in the shard's cursor;
the shard's series states, cursor and the trim of what it consumed are committed in
one transaction fenced by ``WATCH`` on the lease, so an owner that lost its lease
cannot overwrite its successor. A new owner loads the checkpoint and resumes at the
cursor: a handover neither re-fires nor forgets a ``for`` timer. A shard's keys share
a hash tag, so on Redis Cluster each shard lives in one slot and the shards spread.

Alert events go to the shared alerts stream just before the commit (another slot on a
cluster, so not in the transaction). A crash between the two republishes the same
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
from collections.abc import Iterable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from schemas import AlertEvent, ApplicationError, CheckResult, Message, MetricSample
from services.evaluator.live import Follower, retired
from services.evaluator.observation import Observation, from_error, from_result, from_sample
from services.evaluator.router import RELEASE, Router
from services.evaluator.rulebase import SeriesState
from services.evaluator.service import Evaluator
from shared.config import Config
from shared.redisclient import raise_if_cancelled
from shared.streams import (
    Codec,
    StreamNames,
    deadletter_fields,
)

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
    """Owns one shard while its lease holds: reads, evaluates, commits, ticks."""

    def __init__(self, owner: ShardedEvaluator, shard: int) -> None:
        self.owner, self.shard = owner, shard
        names = owner.names
        self.lease_key = names.shard(shard, "evaluator:lease")
        self.cursor_key = names.shard(shard, "evaluator:cursor")
        self.streams = {names.shard(shard, k): k for k in KINDS}
        self.evaluator = Evaluator(owner.config, owner.redis, names, shard=shard)
        self.follower = Follower(self.evaluator)
        self.release = asyncio.Event()  # set: hand the shard over after this batch

    async def run(self) -> None:
        o = self.owner
        try:
            await self.evaluator.load()
            raw: dict[bytes, bytes] = await o.redis.hgetall(self.cursor_key)  # type: ignore[misc,assignment]
            cursor: dict[str, bytes] = {s: raw.get(s.encode(), b"0-0") for s in self.streams}
            next_tick, next_follow = time.monotonic() + o.tick_s, 0.0
            while not self.release.is_set() and await self._renew():
                if time.monotonic() >= next_follow:
                    next_follow = time.monotonic() + FOLLOW_S
                    if not await self._follow():
                        return
                read = await o.redis.xread(cursor, count=o.batch_size, block=o.block_ms)  # type: ignore[arg-type]
                if read and not await self._batch(read, cursor):
                    return
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + o.tick_s
                    if not await self._tick():
                        return
        finally:
            with contextlib.suppress(RedisError):
                await o.redis.eval(RELEASE, 1, self.lease_key, o.member)  # type: ignore[misc]

    async def _renew(self) -> bool:
        o = self.owner
        return bool(await o.redis.eval(_RENEW, 1, self.lease_key, o.member, o.lease_ms))  # type: ignore[misc]

    async def _batch(self, read: Any, cursor: dict[str, bytes]) -> bool:
        o, ev = self.owner, self.evaluator
        publish = o.redis.pipeline(transaction=False)
        observations: list[Observation] = []
        for stream, entries in _by_stream(read):
            kind = self.streams[stream]
            ids = [entry_id for entry_id, _ in entries]
            good, bad = o.codecs[kind].decode(ids, [fields for _, fields in entries])
            observations += _observations(m for _, m in good)
            for rejected in bad:
                publish.xadd(o.names.deadletter, deadletter_fields(stream, ev.group, rejected))
            cursor[stream] = ids[-1]
        async with o.redis.pipeline(transaction=True) as pipe:
            if not await self._fence(pipe):
                return False
            commit = await ev.evaluate_batch(observations, pipe, publish)
            self._queue_cursor(pipe, cursor)
            await publish.execute()
            try:
                await pipe.execute()
            except WatchError:
                return False  # not adopted: the successor owns the shard's state now
        commit()
        return True

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
        ev = self.evaluator
        publish = self.owner.redis.pipeline(transaction=False)
        async with self.owner.redis.pipeline(transaction=True) as pipe:
            if not await self._fence(pipe):
                return False
            ev.queue_tick(alerts, moved, pipe, publish)
            await publish.execute()
            try:
                await pipe.execute()
            except WatchError:
                return False
        ev.adopt_tick(alerts, moved)
        return True

    async def _fence(self, pipe: Pipeline) -> bool:
        """WATCH the lease and check it is still ours; then start the transaction."""
        await pipe.watch(self.lease_key)
        holder = await pipe.get(self.lease_key)
        if holder != self.owner.member.encode():
            await pipe.reset()  # type: ignore[no-untyped-call]
            return False
        pipe.multi()  # type: ignore[no-untyped-call]
        return True

    def _queue_cursor(self, pipe: Pipeline, cursor: dict[str, bytes]) -> None:
        pipe.hset(self.cursor_key, mapping=cursor)  # type: ignore[arg-type]
        for stream, last in cursor.items():
            if last != b"0-0":
                # Only the owner reads a shard and it is past ``last``: drop what it read.
                pipe.xtrim(stream, minid=last, approximate=True)


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
        self.codecs: dict[str, Codec[Any]] = {
            "results": Codec(CheckResult),
            "metrics": Codec(MetricSample),
            "errors": Codec(ApplicationError),
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


def _by_stream(read: Any) -> Iterable[tuple[str, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREAD's reply (a list in RESP2, a dict in RESP3, None on timeout) as
    (stream name, entries)."""
    pairs = read.items() if isinstance(read, dict) else read or []
    for stream, entries in pairs:
        name = stream.decode() if isinstance(stream, bytes) else stream
        if entries:
            yield name, entries


def _observations(messages: Iterable[Message]) -> Iterable[Observation]:
    for message in messages:
        if isinstance(message, CheckResult):
            yield from from_result(message)
        elif isinstance(message, MetricSample):
            yield from_sample(message)
        elif isinstance(message, ApplicationError):
            yield from_error(message)
