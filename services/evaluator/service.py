"""Evaluator stream adapter: results and metrics in, alert events out, state in Redis.

Each batch changes the series states it touches in place; they are checkpointed in a
Redis hash inside the transaction that publishes the batch's alert events and
acknowledges it. Transactions commit in the order their batches were evaluated (one
chain, ``submit``), and once one fails every later one is dropped and the next batch
starts from the checkpoint again: so memory never runs ahead of Redis for long, a
failed batch leaves no trace, and a restart neither re-fires nor forgets a timer.
While one batch's transaction runs in Redis the next batch is computed (pipelining:
Python and Redis each busy at once instead of taking turns).

Scale-out: with ``partitions`` > 1 each process reads both streams in its own consumer
group and keeps only the tenants whose hash falls in its partition (tenant, so that
inhibition between one tenant's services stays in one process).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from math import isfinite
from operator import itemgetter
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from schemas import AlertEvent, ApplicationError, CheckResult, MetricSample
from services.evaluator.checkpoint import hset_packed
from services.evaluator.engine import SEP, Engine, budgets, timed_keys
from services.evaluator.intake import CountingCodec
from services.evaluator.observation import (
    Observation,
    from_error,
    from_result,
    from_samples,
    problem,
)
from services.evaluator.rulebase import SeriesState, copy_state, lifecycle
from shared import metrics
from shared.config import Config
from shared.consumer import AfterCommit, CommitChain, Consumer, Transaction
from shared.errors import SettingsError
from shared.redisclient import raise_if_cancelled
from shared.streams import StreamNames, encode

log = logging.getLogger(__name__)
_message = itemgetter(1)  # of a decoded (entry id, message) pair
GROUP = "evaluator"
MAX_FUTURE_S = 300.0  # clocks drift; a minute or five is not an error
MAX_PAST_S = 86_400.0  # older than the longest default window: no longer meaningful
UNKNOWN_FIELDS = "unknown fields (ignored, entry evaluated)"
STALL_S = 30.0  # a batch not committed after this failed: its transaction never ran


def build_engine(config: Config) -> Engine:
    return Engine(config.all_rules, config.threshold_overrides, config.muting)


class StateView:
    """The states a tick changes: copied from the committed ones on first touch."""

    def __init__(self, committed: Mapping[str, SeriesState]) -> None:
        self.committed = committed
        self.changed: dict[str, SeriesState] = {}

    def get(self, key: str) -> SeriesState | None:
        state = self.changed.get(key)
        if state is None and (base := self.committed.get(key)) is not None:
            state = self.changed[key] = copy_state(base)
        return state

    def __setitem__(self, key: str, state: SeriesState) -> None:
        self.changed[key] = state


class Evaluator:
    """Holds every series' state of its partition; commits it with its outputs."""

    def __init__(
        self,
        config: Config,
        redis: Redis,
        names: StreamNames,
        *,
        partition: int = 0,
        partitions: int = 1,
        shard: int | None = None,
    ) -> None:
        if not 0 <= partition < partitions:
            raise SettingsError(f"evaluator partition {partition} is not in 0..{partitions - 1}")
        self.config, self.redis, self.names = config, redis, names
        self.engine = build_engine(config)
        self.tenants = frozenset(t.id for t in config.tenants)
        self.partition, self.partitions = partition, partitions
        suffix = "" if partitions == 1 else f"-{partition}of{partitions}"
        self.group = GROUP + suffix
        self.state_key = names.key(f"evaluator:state{suffix}")
        self.ignored_key = names.key(f"evaluator:ignored{suffix}")
        if shard is not None:  # a stream shard's state: in its slot, next to its input
            self.group = f"{GROUP}-shard{shard}"
            self.state_key = names.shard(shard, "evaluator:state")
            self.ignored_key = names.shard(shard, "evaluator:ignored")
        self.budget_key = names.key("evaluator:slo_budget")  # shared: keys never collide
        self.states: dict[str, SeriesState] = {}
        self._mine: dict[str, bool] = {}
        # One batch or tick at a time from changing states to handing its transaction
        # over (``submit``) or committing it; else two could interleave their changes and
        # commits (a re-fire). Set: nobody is in between.
        self._idle = asyncio.Event()
        self._idle.set()
        self._entered = 0  # counts _enter(): which evaluation holds _idle
        # Batches are computed on top of each other: a failed one drops the later ones.
        self._chain = CommitChain("evaluator", dependent=True, failed=self._reload)
        self.stall_s = STALL_S
        self._stale = False  # a commit failed: reload the checkpoint before the next batch
        self._codecs = (
            CountingCodec(CheckResult),
            CountingCodec(MetricSample),
            CountingCodec(ApplicationError),
        )
        self._decode_state = msgspec.msgpack.Decoder(SeriesState)
        self._encode_state = msgspec.msgpack.Encoder()

    async def load(self) -> None:
        """Resume from the checkpoint, so a restart neither re-fires nor forgets."""
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.state_key)  # type: ignore[misc,assignment]
        self.states, unreadable = {}, 0
        for key, value in raw.items():
            try:
                self.states[key.decode()] = self._decode_state.decode(value)
            except msgspec.DecodeError:
                unreadable += 1  # e.g. written by an older release: that series starts afresh
        self.engine.restore(self.states)
        log.info("evaluator %s resumed %d series", self.group, len(self.states))
        if unreadable:
            log.warning(
                "evaluator %s: %d unreadable checkpoint entries ignored", self.group, unreadable
            )

    def consumers(
        self,
    ) -> list[Consumer[CheckResult] | Consumer[MetricSample] | Consumer[ApplicationError]]:
        return [
            Consumer(
                self.names.results,
                self.group,
                self._codecs[0],
                self.handle_results,
                self.abort,
                self.submit,
            ),
            Consumer(
                self.names.metrics,
                self.group,
                self._codecs[1],
                self.handle_metrics,
                self.abort,
                self.submit,
            ),
            Consumer(
                self.names.errors,
                self.group,
                self._codecs[2],
                self.handle_errors,
                self.abort,
                self.submit,
            ),
        ]

    async def handle_results(
        self, items: list[tuple[bytes, CheckResult]], pipe: Pipeline
    ) -> AfterCommit:
        await self._enter(drain=False)
        self._count_unknown_fields(pipe, self._codecs[0])
        return self.evaluate((o for _, r in items for o in from_result(r)), pipe, time.time())

    async def handle_metrics(
        self, items: list[tuple[bytes, MetricSample]], pipe: Pipeline
    ) -> AfterCommit:
        await self._enter(drain=False)
        self._count_unknown_fields(pipe, self._codecs[1])
        return self.evaluate(from_samples(map(_message, items)), pipe, time.time())

    async def handle_errors(
        self, items: list[tuple[bytes, ApplicationError]], pipe: Pipeline
    ) -> AfterCommit:
        await self._enter(drain=False)
        self._count_unknown_fields(pipe, self._codecs[2])
        return self.evaluate((from_error(e) for _, e in items), pipe, time.time())

    def _count_unknown_fields(self, pipe: Pipeline, codec: CountingCodec[Any]) -> None:
        if count := codec.take():
            pipe.hincrby(self.ignored_key, UNKNOWN_FIELDS, count)

    def abort(self) -> None:
        """A batch's transaction failed (Redis went away) or was never sent: it may or may
        not have run, so the next batch starts from the checkpoint; its entries stay
        pending and come back."""
        self._stale = True
        self._idle.set()

    async def submit(self, pipe: Transaction, after: AfterCommit | None) -> asyncio.Task[None]:
        """Send the open batch's transaction once every earlier one has committed, and
        let the next batch be computed meanwhile (``CommitChain.submit``)."""
        self._idle.set()  # the chain queues it before anything else can run
        return await self._chain.submit(pipe, after)

    async def settle(self) -> None:
        """Wait for the transactions in flight (on stop: commit what was computed)."""
        await self._chain.settle()

    @property
    def stale(self) -> bool:
        """A commit failed: memory is ahead of the checkpoint until it is reloaded."""
        return self._stale

    def _reload(self) -> None:
        self._stale = True  # memory is ahead of the checkpoint: reload it

    async def _enter(self, *, drain: bool = True) -> None:
        """Wait until no batch or tick is between changing states and handing its
        transaction over; with ``drain`` (or to reload) also until all have committed."""
        while not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), self.stall_s)
            except TimeoutError:
                # The transaction failed, so its entries stay pending and come back:
                # start again from the checkpoint, which never saw them.
                log.warning("evaluator: a batch was never committed; reloading the checkpoint")
                self._stale = True
                self._idle.set()
        self._idle.clear()
        self._entered += 1
        if drain or self._stale:
            try:
                await self._chain.settle()  # a later failure may still mark the state stale
            except BaseException:
                self._idle.set()
                raise
        if self._stale:
            try:
                await self.load()
            except BaseException:
                self._idle.set()  # still stale: the next batch tries again
                raise
            self._stale = False

    def owns(self, tenant: str) -> bool:
        if self.partitions == 1:
            return True
        mine = self._mine.get(tenant)
        if mine is None:
            # crc32, not hash(): it must agree between processes.
            mine = zlib.crc32(tenant.encode()) % self.partitions == self.partition
            self._mine[tenant] = mine
        return mine

    async def evaluate_batch(
        self, observations: Iterable[Observation], pipe: Pipeline, publish: Pipeline
    ) -> AfterCommit:
        """``evaluate``, once no other batch or tick is between copy and commit."""
        await self._enter()
        return self.evaluate(observations, pipe, time.time(), publish)

    def evaluate(
        self,
        observations: Iterable[Observation],
        pipe: Pipeline,
        wall: float,
        publish: Pipeline | None = None,
    ) -> AfterCommit:
        """Queue the checkpoint and the ignore counts on ``pipe``; the alert events too,
        or on ``publish`` when they live in another cluster slot than the state."""
        out = pipe if publish is None else publish
        entered = self._entered
        try:
            ignored, emitted = self._evaluate(observations, pipe, wall, out)
        except BaseException:
            self._stale = True  # half of the batch is in memory: reload before the next
            self._idle.set()
            raise
        for reason, count in ignored.items():
            log.debug("evaluator ignored %d observations: %s", count, reason)
            pipe.hincrby(self.ignored_key, reason, count)

        def commit() -> None:
            if self._entered == entered:  # else submit() handed _idle over already
                self._idle.set()
            _count(emitted)

        return commit

    def _evaluate(
        self, observations: Iterable[Observation], pipe: Pipeline, wall: float, out: Pipeline
    ) -> tuple[Counter[str], Counter[str]]:
        states, observe = self.states, self.engine.observe
        changed: dict[str, SeriesState] = {}  # the batch's checkpoint
        ignored: Counter[str] = Counter()
        emitted: Counter[str] = Counter()
        partitioned, tenants = self.partitions > 1, self.tenants
        # The usual observation is on time and finite: problem() only for the others.
        oldest, newest = wall - MAX_PAST_S, wall + MAX_FUTURE_S
        for obs in observations:
            if partitioned and not self.owns(obs.tenant):
                continue
            if tenants and obs.tenant not in tenants:
                ignored["unknown tenant"] += 1
            elif not (oldest <= obs.at <= newest and isfinite(obs.value)) and (
                reason := problem(obs, wall, MAX_FUTURE_S, MAX_PAST_S)
            ):
                ignored[reason] += 1
            else:
                for alert in observe(states, obs, changed):
                    emitted[alert.state] += 1
                    # The engine stays pure; the adapter knows which message caused it.
                    caused = msgspec.structs.replace(alert, correlation_id=obs.event_id)
                    out.xadd(self.names.alerts, encode(caused))
        self._checkpoint(pipe, changed, out)
        return ignored, emitted

    def _checkpoint(
        self, pipe: Pipeline, changed: Mapping[str, SeriesState], out: Pipeline
    ) -> None:
        if not changed:
            return
        encoded = map(self._encode_state.encode, changed.values())  # in C, no frame per state
        hset_packed(pipe, self.state_key, dict(zip(changed, encoded, strict=True)))
        if left := budgets(self.engine, changed, time.time()):
            # Read by the API and `vigil rules check`: share of the SLO budget left.
            out.hset(self.budget_key, mapping={_readable(k): f"{v:.6f}" for k, v in left.items()})

    async def tick(self, now: float) -> int:
        """Let time pass for ``for`` timers, windows and absence; returns events emitted."""
        await self._enter()
        try:
            alerts, moved = self.plan_tick(now)
            if moved:
                pipe = self.redis.pipeline(transaction=True)
                self.queue_tick(alerts, moved, pipe, pipe)
                await pipe.execute()
                self.adopt_tick(alerts, moved)
        except RedisError:
            self._stale = True  # it may have committed: reload before the next batch
            raise
        finally:
            self._idle.set()
        return len(alerts)

    def plan_tick(self, now: float) -> tuple[list[AlertEvent], dict[str, SeriesState]]:
        """The events a tick emits and the states it moves; nothing is adopted yet."""
        view = StateView(self.states)
        alerts = self.engine.tick(view, timed_keys(self.engine, self.states), now)
        # A tick mostly just slides windows, which the next evaluation redoes anyway:
        # keep (and checkpoint) only the series whose alert lifecycle moved.
        moved = {k: s for k, s in view.changed.items() if lifecycle(s) != lifecycle(self.states[k])}
        return alerts, moved

    def queue_tick(
        self,
        alerts: list[AlertEvent],
        moved: dict[str, SeriesState],
        pipe: Pipeline,
        publish: Pipeline,
    ) -> None:
        for alert in alerts:
            publish.xadd(self.names.alerts, encode(alert))
        self._checkpoint(pipe, moved, publish)

    def adopt_tick(self, alerts: list[AlertEvent], moved: dict[str, SeriesState]) -> None:
        self.states.update(moved)
        _count(Counter(alert.state for alert in alerts))

    async def tick_forever(self, interval: float = 5.0) -> None:
        while True:
            try:
                await self.tick(time.time())
            except RedisError as exc:  # an outage: nothing was adopted, the next tick retries
                raise_if_cancelled(exc)
                log.warning("evaluator tick failed: %s", exc)
            await asyncio.sleep(interval)

    async def ignored(self) -> dict[str, int]:
        """How many observations were ignored, by reason."""
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.ignored_key)  # type: ignore[misc,assignment]
        return {k.decode(): int(v) for k, v in raw.items()}


def _readable(key: str) -> str:
    return key.replace(SEP, "/")


def _count(emitted: Counter[str]) -> None:
    for state, n in emitted.items():
        metrics.ALERT_EVENTS.labels(state).inc(n)
