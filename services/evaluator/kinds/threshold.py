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
from itertools import repeat
from typing import Annotated, Literal

import msgspec

from services.evaluator.aggregates import (
    Aggregate,
    aggregator,
    counter_increase,
    ordered_bucket_quantile,
    prune,
    push,
    slide,
)
from services.evaluator.observation import Observation
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict
from shared.configbase import Seconds

Op = Literal["above", "below", "eq", "ne"]
_WORDS = {"above": "exceeded by", "below": "below by"}
_NO_LABELS: dict[str, str] = {}
_BLANK = repeat("")  # a label an observation lacks is blank


def number(x: float) -> str:
    """5.234 -> '5.23', 2.0 -> '2', 7.2 -> '7.2': what a human reads in a message."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _bound(le: str) -> float | None:
    """A bucket's upper bound from its ``le`` label ("+Inf" parses as inf), None if not one."""
    try:
        return float(le)
    except ValueError:
        return None


def _bucket_order(item: tuple[str, object]) -> tuple[bool, float]:
    bound = _bound(item[0])
    return (bound is None, 0.0 if bound is None else bound)


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
        # In C: a dict comprehension is a Python frame of its own.
        labels = dict(zip(self.by, map(obs.labels.get, self.by, _BLANK), strict=False))
        if "check" in obs.labels:
            labels["check"] = obs.labels["check"]
        return labels

    def __post_init__(self) -> None:
        if self.histogram and self.aggregate not in ("p95", "p99"):
            raise ValueError("histogram: needs aggregate p95 or p99")

    def observe(self, state: SeriesState, obs: Observation) -> None:
        if self.histogram:
            self._observe_bucket(state, obs)
            return
        den = obs.source == self.ratio_of
        samples = state.den if den else state.samples
        if self.aggregate == "last":  # only the newest value counts: keep just that one
            if not samples:
                samples.append((obs.at, obs.value))
            elif obs.at >= samples[-1][0]:
                samples[-1] = (obs.at, obs.value)
            return
        at, value = obs.at, obs.value
        if samples and at < samples[-1][0]:
            insort(samples, (at, value))  # a late one, in its place: push(), inlined
        else:
            samples.append((at, value))
        if den:
            state.den_total += value
            if len(samples) > self.max_samples:
                state.den_total = slide(samples, state.den_total, -math.inf, self.max_samples)
        else:
            state.total += value
            if len(samples) > self.max_samples:
                state.total = slide(samples, state.total, -math.inf, self.max_samples)

    def _observe_bucket(self, state: SeriesState, obs: Observation) -> None:
        le = obs.labels.get("le")
        if le is None:
            return  # not a bucket sample (_sum, _count): nothing to learn
        samples = state.buckets.get(le)
        if samples is None:
            samples = state.buckets[le] = []
            # Kept ordered by bound, sorted once per new bucket, not per evaluation.
            state.buckets = dict(sorted(state.buckets.items(), key=_bucket_order))
        push(samples, obs.at, obs.value)
        if len(samples) > self.max_samples:
            del samples[0]

    def value(self, state: SeriesState, now: float) -> float | None:
        if self.histogram:
            return self._histogram_quantile(state, now)
        if self.aggregate == "last":
            value = state.samples[-1][1] if state.samples else None
            if value is None or self.ratio_of is None:
                return value
            total = state.den[-1][1] if state.den else None
            return None if not total else value / total
        cutoff, cap = now - self.window, self.max_samples
        samples = state.samples
        if samples and (samples[0][0] <= cutoff or len(samples) > cap):
            state.total = slide(samples, state.total, cutoff, cap)
        # `sum` (most windowed rules) read straight off the running total: no call
        value = state.total if self.aggregate == "sum" else self._of(samples, state.total)
        if value is None or self.ratio_of is None:
            return value
        den = state.den
        if den and (den[0][0] <= cutoff or len(den) > cap):
            state.den_total = slide(den, state.den_total, cutoff, cap)
        total = state.den_total if self.aggregate == "sum" else self._of(den, state.den_total)
        return None if not total else value / total

    def _of(self, samples: list[tuple[float, float]], total: float) -> float | None:
        """The aggregate of a pruned window whose values sum to ``total``."""
        aggregate = self.aggregate
        if aggregate == "sum":  # nothing in the window sums to zero: zero errors, zero bookings
            return total
        if aggregate == "count":
            return float(len(samples))
        if aggregate == "avg":
            return total / len(samples) if samples else None
        return aggregator(aggregate)(samples)

    def _histogram_quantile(self, state: SeriesState, now: float) -> float | None:
        buckets = []
        cutoff, cap = now - self.window, self.max_samples
        for le, samples in state.buckets.items():
            prune(samples, cutoff, cap)
            if (upper := _bound(le)) is not None:
                buckets.append((upper, counter_increase(samples)))
        q = 0.95 if self.aggregate == "p95" else 0.99
        return ordered_bucket_quantile(q, buckets)

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

    def holds_at(self, state: SeriesState, now: float, threshold: float) -> bool:
        """Whether ``verdict`` would find the condition holding (False without data),
        without building the verdict: the engine's shortcut for a quiet series."""
        value = self.value(state, now)
        if value is None or not math.isfinite(value):
            return False
        if self.op == "above":
            return value > threshold
        return holds(self.op, value, threshold)

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
