"""The one place replay touches the evaluator: feed results through its pure
engine (``apply``) exactly as the live adapter does, in memory, without I/O."""

from __future__ import annotations

from collections.abc import Sequence

from schemas import AlertEvent, CheckResult
from services.evaluator.engine import EMPTY, SeriesState, apply, series_key
from services.evaluator.rules import AnyRule


class DryRun:
    """Rule state for every series, starting empty; returns the alert events fired."""

    def __init__(self, rules: Sequence[AnyRule]) -> None:
        self.rules = list(rules)
        self.states: dict[str, SeriesState] = {}

    def feed(self, result: CheckResult) -> list[AlertEvent]:
        events = []
        for rule in self.rules:
            if not rule.match.matches(result):
                continue
            key = series_key(rule, result)
            state, event = apply(rule, self.states.get(key, EMPTY), result, result.observed_at)
            self.states[key] = state
            if event is not None:
                events.append(event)
        return events
