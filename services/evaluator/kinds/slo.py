"""``slo``: multiwindow, multi-burn-rate alerts on an error budget (the SRE workbook).

Events are counted per minute: check results (``bad: status``: every result is an
event, an unhealthy one a bad event) or two count metrics (``bad`` and ``total``). The
burn rate over a window is its bad ratio divided by the budget ``1 - objective``; the
alert fires while both windows of a pair burn faster than the pair's factor. Defaults:
14.4x over 1 h and 5 min, 6x over 6 h and 30 min, 1x over 3 d and 6 h. Memory is bounded:
minute buckets for the longest window, day buckets for the budget ``period``.
"""

from __future__ import annotations

from bisect import insort
from typing import Annotated

import msgspec

from schemas import Category, Priority, Severity
from services.evaluator.observation import STATUS, Observation
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict
from shared.configbase import ConfigStruct, Seconds

MINUTE, DAY = 60.0, 86_400.0
Buckets = list[tuple[float, float]]


class BurnWindow(ConfigStruct, frozen=True, kw_only=True):
    long: Seconds
    short: Seconds
    factor: Annotated[float, msgspec.Meta(gt=0)]


WORKBOOK = (
    BurnWindow(long=Seconds(3600), short=Seconds(300), factor=14.4),
    BurnWindow(long=Seconds(6 * 3600), short=Seconds(1800), factor=6.0),
    BurnWindow(long=Seconds(3 * DAY), short=Seconds(6 * 3600), factor=1.0),
)


def add(buckets: Buckets, start: float, value: float, keep_after: float) -> None:
    """Add ``value`` to the bucket starting at ``start``; drop buckets before ``keep_after``."""
    if buckets and buckets[-1][0] == start:
        buckets[-1] = (start, buckets[-1][1] + value)
    elif not buckets or buckets[-1][0] < start:
        buckets.append((start, value))
    else:  # a late observation
        for i in range(len(buckets) - 1, -1, -1):
            if buckets[i][0] == start:
                buckets[i] = (start, buckets[i][1] + value)
                break
        else:
            insort(buckets, (start, value))
    drop = 0
    while drop < len(buckets) and buckets[drop][0] < keep_after:
        drop += 1
    if drop:
        del buckets[:drop]


def since(buckets: Buckets, start: float) -> float:
    """The sum of the buckets that start at or after ``start``."""
    total = 0.0
    for at, value in reversed(buckets):
        if at < start:
            break
        total += value
    return total


class SloRule(RuleOptions, frozen=True, kw_only=True, tag="slo", tag_field="type"):
    """Alert when the error budget of ``objective`` burns too fast (see module doc)."""

    objective: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    period: Seconds = Seconds(30 * DAY)
    bad: str = STATUS  # "status" (check results) or a count metric of bad events
    total: str | None = None  # count metric of all events (required unless bad is status)
    by: list[str] = []
    windows: list[BurnWindow] = msgspec.field(default_factory=lambda: list(WORKBOOK))
    severity: Severity = "critical"
    category: Category = "availability"
    title: str = "{service} is burning its error budget"

    def __post_init__(self) -> None:
        if (self.bad == STATUS) != (self.total is None):
            raise ValueError("total: give a total metric exactly when bad is a metric")

    @property
    def options(self) -> RuleOptions:
        return self

    @property
    def threshold(self) -> float:
        return self.windows[0].factor if self.windows else 1.0

    @property
    def timed(self) -> bool:
        return True

    def sources(self) -> frozenset[str]:
        return frozenset({self.bad} | ({self.total} if self.total else set()))

    def series_labels(self, obs: Observation) -> dict[str, str]:
        return {k: obs.labels.get(k, "") for k in self.by}

    def observe(self, state: SeriesState, obs: Observation) -> None:
        # Memory: samples = bad per minute, den = all per minute, buckets = per day.
        minute, day = obs.at - obs.at % MINUTE, obs.at - obs.at % DAY
        horizon = obs.at - max(w.long for w in self.windows) - MINUTE
        period_start = obs.at - self.period - DAY
        if obs.source == STATUS:
            bad, total = (1.0 if obs.status == "unhealthy" else 0.0), 1.0
        elif obs.source == self.bad:
            bad, total = obs.value, 0.0
        else:
            bad, total = 0.0, obs.value
        for value, fine, daily in ((bad, state.samples, "bad"), (total, state.den, "total")):
            if value:
                add(fine, minute, value, horizon)
                add(state.buckets.setdefault(daily, []), day, value, period_start)

    def burn(self, state: SeriesState, now: float, window: float) -> float:
        start = now - window
        total = since(state.den, start)
        return since(state.samples, start) / total / (1 - self.objective) if total else 0.0

    def budget_remaining(self, state: SeriesState, now: float) -> float:
        """Share of the period's error budget left (negative when overspent)."""
        start = now - self.period
        total = since(state.buckets.get("total", []), start)
        if not total:
            return 1.0
        return 1 - since(state.buckets.get("bad", []), start) / total / (1 - self.objective)

    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict | None:
        minute = now - now % MINUTE
        if state.evaluated_at == minute:
            return None  # burn rates move by the minute: evaluate once a minute
        state.evaluated_at = minute
        if not state.den:
            return None
        scale = threshold / self.threshold  # a tenant override scales every factor
        rates = [
            (w, self.burn(state, now, w.long), self.burn(state, now, w.short)) for w in self.windows
        ]
        firing = [
            (w, lr, sr) for w, lr, sr in rates if lr > w.factor * scale and sr > w.factor * scale
        ]
        window, long_rate, short_rate = firing[0] if firing else rates[0]
        factor = window.factor * scale
        left = self.budget_remaining(state, now)
        message = (
            f"error budget burning {long_rate:.1f}x over {_span(window.long)} and "
            f"{short_rate:.1f}x over {_span(window.short)} (threshold {factor:g}x); "
            f"{left * 100:.0f} % of the {_span(self.period)} budget left"
        )
        priority: Priority = "critical" if factor >= 14 else "high" if factor >= 6 else "medium"
        return Verdict(bool(firing), long_rate, factor, message, priority=priority)


def _span(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
