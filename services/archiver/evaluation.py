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

    def feed(self, message: CheckResult | MetricSample) -> list[AlertEvent]:
        observations: Sequence[Observation] = (
            from_result(message) if isinstance(message, CheckResult) else (from_sample(message),)
        )
        now = message.observed_at.timestamp()
        events: list[AlertEvent] = []
        for observation in observations:
            events += self.engine.observe(self.states, observation)
        # The live evaluator also lets time pass between observations (``for``, absence);
        # in a replay the observations' own times are the clock.
        events += self.engine.tick(self.states, timed_keys(self.engine, self.states), now)
        return events
