"""The one place replay touches the evaluator: feed results through its pure
engine exactly as the live adapter does, in memory, without I/O."""

from __future__ import annotations

from collections.abc import Sequence

from schemas import AlertEvent, CheckResult, MetricSample
from services.evaluator.engine import Engine, timed_keys
from services.evaluator.observation import Observation, from_result, from_sample
from services.evaluator.rulebase import SeriesState
from services.evaluator.rules import AnyRule


class DryRun:
    """Rule state for every series, starting empty; returns the alert events fired."""

    def __init__(self, rules: Sequence[AnyRule]) -> None:
        self.engine = Engine(rules)
        self.states: dict[str, SeriesState] = {}

    def feed(self, result: CheckResult) -> list[AlertEvent]:
        return self._observe(from_result(result), result.observed_at.timestamp())

    def feed_sample(self, sample: MetricSample) -> list[AlertEvent]:
        return self._observe((from_sample(sample),), sample.observed_at.timestamp())

    def _observe(self, observations: Sequence[Observation], now: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for observation in observations:
            events += self.engine.observe(self.states, observation)
        # The live evaluator also lets time pass between observations (``for``, absence);
        # in a replay the observations' own times are the clock.
        events += self.engine.tick(self.states, timed_keys(self.engine, self.states), now)
        return events
