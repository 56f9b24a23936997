"""Evaluator stream adapter: results in, alert events out, state checkpointed in Redis."""

from __future__ import annotations

import logging

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import CheckResult
from services.evaluator.engine import EMPTY, SeriesState, apply, series_key
from shared.config import Config
from shared.consumer import AfterCommit, Consumer
from shared.streams import Codec, StreamNames, encode

log = logging.getLogger(__name__)
GROUP = "evaluator"


class Evaluator:
    """Holds every series' state; only commits it once its outputs are in Redis."""

    def __init__(self, config: Config, redis: Redis, names: StreamNames) -> None:
        self.config, self.redis, self.names = config, redis, names
        self.state_key = names.key("evaluator:state")
        self.states: dict[str, SeriesState] = {}
        self._decode_state = msgspec.msgpack.Decoder(SeriesState)
        self._encode_state = msgspec.msgpack.Encoder()

    async def load(self) -> None:
        """Resume from the checkpoint, so a restart neither re-fires nor forgets."""
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.state_key)  # type: ignore[misc,assignment]
        self.states = {k.decode(): self._decode_state.decode(v) for k, v in raw.items()}
        log.info("evaluator resumed %d series", len(self.states))

    def consumer(self) -> Consumer[CheckResult]:
        return Consumer(self.names.results, GROUP, Codec(CheckResult), self.handle)

    async def handle(self, items: list[tuple[bytes, CheckResult]], pipe: Pipeline) -> AfterCommit:
        changed: dict[str, SeriesState] = {}
        for _, result in items:
            for rule in self.config.rules:
                if not rule.match.matches(result):
                    continue
                key = series_key(rule, result)
                before = changed.get(key) or self.states.get(key, EMPTY)
                after, alert = apply(rule, before, result, result.observed_at)
                if after != before:
                    changed[key] = after
                if alert is not None:
                    pipe.xadd(self.names.alerts, encode(alert))
        if changed:
            pipe.hset(
                self.state_key,
                mapping={k: self._encode_state.encode(v) for k, v in changed.items()},
            )
        return lambda: self.states.update(changed)
