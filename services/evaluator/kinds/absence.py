"""``absence``: a series that has reported before has been silent for ``after``."""

from __future__ import annotations

from schemas import Category
from services.evaluator.observation import Observation
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict
from shared.configbase import Seconds


class AbsenceRule(RuleOptions, frozen=True, kw_only=True, tag="absence", tag_field="type"):
    """Fire when ``source`` has had no observation for ``after``; resolve when one arrives.

    Only series seen at least once can be missed: the evaluator cannot know of others.
    """

    source: str
    after: Seconds
    by: list[str] = []
    category: Category = "system"
    title: str = "no {source} data from {service}"

    @property
    def options(self) -> RuleOptions:
        return self

    @property
    def threshold(self) -> float:
        return float(self.after)

    @property
    def timed(self) -> bool:
        return True

    def sources(self) -> frozenset[str]:
        return frozenset({self.source})

    def series_labels(self, obs: Observation) -> dict[str, str]:
        return {k: obs.labels.get(k, "") for k in self.by}

    def observe(self, state: SeriesState, obs: Observation) -> None:
        state.last_seen = max(state.last_seen, obs.at)

    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict:
        silent = max(0.0, now - state.last_seen)
        message = f"no {self.source} data for {silent:.0f} s (threshold {threshold:.0f} s)"
        return Verdict(silent >= threshold, silent, threshold, message, silent / threshold - 1)
