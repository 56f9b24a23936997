"""Adopt rules, silences and maintenance windows changed through the console API while
running: poll the published generation, rebuild the engine when it moves.

The engine is swapped between batches (the evaluator's batch gate), and its firing set
is rebuilt from the committed states, so no batch sees half of a change. Series of a
removed rule keep their state and simply get no more verdicts.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from redis.exceptions import RedisError

from services.evaluator.engine import Engine
from services.evaluator.service import Evaluator
from shared import liveconfig

log = logging.getLogger(__name__)
POLL_S = 1.0


class Follower:
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.seen = -1

    async def refresh(self) -> bool:
        """Adopt a newer published set; True when the engine changed."""
        ev = self.evaluator
        generation = await liveconfig.generation(ev.redis, ev.names)
        if generation == self.seen:
            return False
        self.seen = generation  # a set this release cannot read is reported once, not per poll
        live = await liveconfig.fetch(ev.redis, ev.names)
        if live is None:
            return False
        config = ev.config
        engine = Engine(
            liveconfig.rules(config, live),
            config.threshold_overrides,
            liveconfig.muting(config, live),
        )
        await ev._enter()
        try:
            engine.restore(ev.states)
            ev.engine = engine
        finally:
            ev._idle.set()
        log.info("evaluator %s: live configuration generation %d adopted", ev.group, generation)
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
