"""``application_error``: errors reported by other systems become application alerts.

One alert per (tenant, service, error type, source): repeats while it fires count up
its occurrences and re-notify after ``repeat_interval``; it resolves when no report has
come for ``resolve_after``. Priority is from impact: a database error or more than
10 affected users is critical, more than 5 occurrences high, anything else medium.
"""

from __future__ import annotations

from schemas import Category, Priority, Severity
from services.evaluator.observation import APPLICATION_ERROR, Observation
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict
from shared.configbase import Seconds

_SOURCES = frozenset({APPLICATION_ERROR})
_DATABASE_WORDS = ("database", "db", "sql", "postgres", "mysql", "redis")


def impact(error_type: str, users: int, occurrences: int) -> Priority:
    if any(word in error_type.lower() for word in _DATABASE_WORDS) or users > 10:
        return "critical"
    return "high" if occurrences > 5 else "medium"


class ApplicationErrorRule(
    RuleOptions, frozen=True, kw_only=True, tag="application_error", tag_field="type"
):
    """Turn reported application errors into alerts deduplicated by type + source."""

    resolve_after: Seconds = Seconds(3600)
    repeat_interval: Seconds = Seconds(3600)
    severity: Severity = "warning"
    category: Category = "application"
    title: str = "{error_type} in {source}"

    @property
    def options(self) -> RuleOptions:
        return self

    @property
    def threshold(self) -> float:
        return 1.0

    @property
    def timed(self) -> bool:
        return True  # resolves when the reports stop

    def sources(self) -> frozenset[str]:
        return _SOURCES

    def series_labels(self, obs: Observation) -> dict[str, str]:
        return {"error_type": obs.labels.get("error_type", ""), "source": obs.labels["source"]}

    def observe(self, state: SeriesState, obs: Observation) -> None:
        # The series' generic counters, read here as: failing = occurrences while this
        # alert lives, passing = most users affected at once, status = last endpoint.
        if state.firing_since is None and state.last_seen < obs.at - self.resolve_after:
            state.failing = state.passing = 0
        state.failing += int(obs.value)
        state.passing = max(state.passing, obs.users)
        state.error, state.status = obs.error, obs.labels.get("endpoint", "")
        state.last_seen = max(state.last_seen, obs.at)

    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict | None:
        if not state.failing:
            return None
        active = now - state.last_seen < self.resolve_after
        error_type = state.labels.get("error_type", "")
        where = f" at {state.status}" if state.status else ""
        message = (
            f"{error_type}{where}: {state.error} ({state.failing} occurrences, "
            f"{state.passing} users affected)"
        )
        priority = impact(error_type, state.passing, state.failing)
        return Verdict(active, float(state.failing), threshold, message, priority=priority)
