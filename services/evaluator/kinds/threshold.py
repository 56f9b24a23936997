"""``threshold``: a value, or an aggregate over a sliding window, compared to a threshold.

The value is the ``aggregate`` of ``source`` over the last ``window`` (``last`` by
default); with ``ratio_of`` it is that aggregate divided by the same aggregate of a
second series (5xx responses / all responses). ``op: below`` is an inverse threshold.
Memory per series is bounded by ``max_samples``: beyond it the oldest samples go.
``last`` keeps the latest value however old (a gauge holds until it changes; use an
``absence`` rule for staleness). With ``histogram: true`` the source is a Prometheus
histogram's ``_bucket`` counter (label ``le``) and ``p95``/``p99`` interpolate over the
buckets' increase in the window, as ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from bisect import insort
from typing import Annotated, Literal

import msgspec

from services.evaluator.aggregates import (
    Aggregate,
    aggregator,
    bucket_quantile,
    counter_increase,
    prune,
)
from services.evaluator.observation import Observation
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict
from shared.configbase import Seconds

Op = Literal["above", "below", "eq", "ne"]
_WORDS = {"above": "exceeded by", "below": "below by"}
_NO_LABELS: dict[str, str] = {}


def number(x: float) -> str:
    """5.234 -> '5.23', 2.0 -> '2', 7.2 -> '7.2': what a human reads in a message."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def holds(op: Op, value: float, threshold: float) -> bool:
    if op == "above":
        return value > threshold
    if op == "below":
        return value < threshold
    if op == "eq":
        return value == threshold
    return value != threshold


def excess(op: Op, value: float, threshold: float) -> float:
    """How far past the threshold, relative to it (0.5: 50 % over)."""
    if op not in _WORDS:
        return 0.0
    if threshold == 0:
        return 1.0 if value != 0 else 0.0
    gap = value - threshold if op == "above" else threshold - value
    return gap / abs(threshold)


class ThresholdRule(RuleOptions, frozen=True, kw_only=True, tag="threshold", tag_field="type"):
    """Compare ``aggregate(source over window)`` (optionally a ratio) with ``threshold``."""

    source: str  # "status", "latency" (seconds) or a metric name
    op: Op = "above"
    threshold: float
    aggregate: Aggregate = "last"
    window: Seconds = Seconds(300)
    ratio_of: str | None = None
    by: list[str] = []  # labels that identify a series besides tenant and service
    max_samples: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    histogram: bool = False  # source is a Prometheus `_bucket` counter with label `le`
    subject: str = ""  # "p95 latency": how the message names the value
    unit: str = ""
    scale: float = 1.0  # display factor: 100 shows a ratio as a percentage
    title: str = "{rule} on {service}"

    @property
    def options(self) -> RuleOptions:
        return self

    @property
    def timed(self) -> bool:
        # Windows slide and `for`/`keep_firing_for` timers run without new data.
        return self.aggregate != "last" or self.for_ > 0 or self.keep_firing_for > 0

    def sources(self) -> frozenset[str]:
        return frozenset({self.source} | ({self.ratio_of} if self.ratio_of else set()))

    def series_labels(self, obs: Observation) -> dict[str, str]:
        if not self.by and "check" not in obs.labels:
            return _NO_LABELS  # shared, never mutated
        labels = {k: obs.labels.get(k, "") for k in self.by}
        if "check" in obs.labels:
            labels["check"] = obs.labels["check"]
        return labels

    def __post_init__(self) -> None:
        if self.histogram and self.aggregate not in ("p95", "p99"):
            raise ValueError("histogram: needs aggregate p95 or p99")

    def observe(self, state: SeriesState, obs: Observation) -> None:
        if self.histogram:
            le = obs.labels.get("le")
            if le is None:
                return  # not a bucket sample (_sum, _count): nothing to learn
            samples = state.buckets.setdefault(le, [])
        else:
            samples = state.den if obs.source == self.ratio_of else state.samples
        if not samples or obs.at >= samples[-1][0]:
            samples.append((obs.at, obs.value))
        else:
            insort(samples, (obs.at, obs.value))  # late arrival: keep the window in order
        if len(samples) > self.max_samples:
            del samples[0]

    def _prune(self, samples: list[tuple[float, float]], now: float) -> None:
        # The cheap tests first: this runs once or twice per observation.
        if self.aggregate == "last":
            if len(samples) > 1:
                del samples[:-1]
        elif samples and (samples[0][0] <= now - self.window or len(samples) > self.max_samples):
            prune(samples, now - self.window, self.max_samples)

    def value(self, state: SeriesState, now: float) -> float | None:
        if self.histogram:
            return self._histogram_quantile(state, now)
        self._prune(state.samples, now)
        of = aggregator(self.aggregate)
        value = of(state.samples)
        if value is None or self.ratio_of is None:
            return value
        self._prune(state.den, now)
        total = of(state.den)
        return None if not total else value / total

    def _histogram_quantile(self, state: SeriesState, now: float) -> float | None:
        buckets = []
        for le, samples in state.buckets.items():
            self._prune(samples, now)
            try:
                upper = float(le)  # "+Inf" parses as inf
            except ValueError:
                continue
            buckets.append((upper, counter_increase(samples)))
        return bucket_quantile(0.95 if self.aggregate == "p95" else 0.99, buckets)

    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict | None:
        value = self.value(state, now)
        if value is None or not math.isfinite(value):
            return None  # no data in the window: the alert keeps its state
        op = self.op
        if op == "above":  # holds() and excess() inlined for the usual case: per observation
            if threshold == 0:
                zero = 1.0 if value != 0 else 0.0
                return Verdict(value > threshold, value, threshold, self.describe, zero)
            over = (value - threshold) / abs(threshold)
            return Verdict(value > threshold, value, threshold, self.describe, over)
        active = holds(op, value, threshold)
        return Verdict(active, value, threshold, self.describe, excess(op, value, threshold))

    def describe(self, verdict: Verdict) -> str:
        unit = f" {self.unit}" if self.unit else ""
        subject = self.subject or f"{self.aggregate} {self.source}"
        message = (
            f"{subject} is {number(verdict.value * self.scale)}{unit} "
            f"(threshold {number(verdict.threshold * self.scale)}{unit}"
        )
        if verdict.active and self.op in _WORDS:
            message += f", {_WORDS[self.op]} {verdict.excess * 100:.0f} %"
        return message + ")"
