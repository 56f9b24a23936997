"""``consecutive``: N failing check results in a row fire, M passing in a row resolve."""

from __future__ import annotations

from schemas import Category, Severity, Status
from services.evaluator.observation import STATUS, Observation
from services.evaluator.rulebase import Count, RuleOptions, SeriesState, Verdict
from shared.configbase import Seconds

_PASSING = frozenset({"healthy", "degraded"})
_SOURCES = frozenset({STATUS})


class ConsecutiveRule(RuleOptions, frozen=True, kw_only=True, tag="consecutive", tag_field="type"):
    """Fire after ``failures`` failing results in a row; resolve after ``successes`` passing.

    A result fails when its status is in ``failing``; ``unknown`` (unless listed) is
    neither evidence of failure nor of recovery.
    """

    failures: Count = 3
    successes: Count = 1
    failing: frozenset[Status] = frozenset({"unhealthy"})
    severity: Severity = "critical"
    category: Category = "availability"
    cooldown: Seconds = Seconds(0)
    title: str = "{check} is failing"

    @property
    def options(self) -> RuleOptions:
        return self

    @property
    def threshold(self) -> float:
        return float(self.failures)

    @property
    def timed(self) -> bool:
        return False

    def sources(self) -> frozenset[str]:
        return _SOURCES

    def series_labels(self, obs: Observation) -> dict[str, str]:
        return {"check": obs.labels.get("check", ""), "tier": obs.labels.get("tier", "")}

    def observe(self, state: SeriesState, obs: Observation) -> None:
        if obs.status in self.failing:
            state.failing, state.passing = state.failing + 1, 0
        elif obs.status in _PASSING:
            state.passing, state.failing = state.passing + 1, 0
        else:
            return
        state.status, state.error = obs.status, obs.error

    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict | None:
        if state.failing >= threshold:
            message = f"{state.failing} {state.status} results in a row" + (
                f"; last: {state.error}" if state.error else ""
            )
            return Verdict(True, float(state.failing), threshold, message)
        if state.passing >= self.successes:
            message = f"{state.passing} passing results in a row"
            return Verdict(False, float(state.passing), float(self.successes), message)
        return None  # between the two: the alert keeps its state
