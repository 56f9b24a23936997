"""Adopt rules, silences and maintenance windows changed through the console API while
running: poll the published generation, rebuild the engine when it moves.

The engine is swapped between batches (the evaluator's batch gate), and its firing set
is rebuilt from the committed states, so no batch sees half of a change. A series still
firing under a rule that was disabled or removed gets its resolved event, so its alert
closes and its notifications say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import msgspec
from redis.exceptions import RedisError

from schemas import AlertEvent
from services.evaluator.alerting import event, finish
from services.evaluator.engine import Engine, fingerprint
from services.evaluator.rulebase import SeriesState, Verdict, copy_state
from services.evaluator.service import Evaluator
from shared import liveconfig

log = logging.getLogger(__name__)
POLL_S = 1.0


class Follower:
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.seen = -1

    async def newer(self) -> tuple[int, Engine] | None:
        """The engine of a newer published set and its generation; None when none is."""
        ev = self.evaluator
        generation = await liveconfig.generation(ev.redis, ev.names)
        if generation == self.seen:
            return None
        try:
            live = await liveconfig.fetch(ev.redis, ev.names)
        except msgspec.ValidationError:
            self.seen = generation  # a set this release cannot read: reported once
            raise
        if live is None:
            return None
        config = ev.config
        engine = Engine(
            liveconfig.rules(config, live),
            config.threshold_overrides,
            liveconfig.muting(config, live),
        )
        return generation, engine

    def adopted(self, generation: int, engine: Engine) -> None:
        """Swap in ``engine`` once the retired alerts are committed."""
        ev = self.evaluator
        engine.restore(ev.states)
        ev.engine = engine
        self.seen = generation
        log.info("evaluator %s: live configuration generation %d adopted", ev.group, generation)

    async def refresh(self) -> bool:
        """Adopt a newer published set; True when the engine changed."""
        found = await self.newer()
        if found is None:
            return False
        ev = self.evaluator
        await ev._enter()
        try:
            events, changed = retired(ev.engine, found[1], ev.states, time.time())
            if events:
                pipe = ev.redis.pipeline(transaction=True)
                ev.queue_tick(events, changed, pipe, pipe)
                await pipe.execute()
                ev.adopt_tick(events, changed)
            self.adopted(*found)
        finally:
            ev._idle.set()
        return True

    async def follow(self, every_s: float = POLL_S) -> None:
        while True:
            try:
                await self.refresh()
            except RedisError as exc:  # an outage: keep the rules we have, retry
                log.warning("evaluator: live configuration not read: %s", exc)
            except msgspec.ValidationError as exc:
                log.error("evaluator: live configuration refused (kept the previous): %s", exc)
            await asyncio.sleep(every_s)
            liveconfig.stop_if_cancelled()


def retired(
    old: Engine, new: Engine, states: Mapping[str, SeriesState], now: float
) -> tuple[list[AlertEvent], dict[str, SeriesState]]:
    """Resolved events for the series still firing under a rule ``new`` no longer has,
    and their states after it."""
    events: list[AlertEvent] = []
    changed: dict[str, SeriesState] = {}
    for key, committed in states.items():
        rule = old.rules.get(committed.rule)
        if committed.firing_since is None or rule is None or rule.name in new.rules:
            continue
        state = copy_state(committed)
        text = f"rule {rule.name} was disabled or removed"
        verdict = Verdict(active=False, value=0.0, threshold=rule.threshold, text=text)
        events.append(
            event(rule, state, verdict, "resolved", now, fingerprint(key), state.muted_by)
        )
        finish(state, now)
        changed[key] = state
    return events, changed
