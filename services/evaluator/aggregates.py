"""Window aggregates over ``(time, value)`` samples: pure maths, no state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

Aggregate = Literal["last", "count", "sum", "avg", "min", "max", "rate", "p95", "p99"]
Sample = tuple[float, float]


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile: the smallest value with at least ``q`` of the values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def counter_increase(samples: Sequence[Sample]) -> float:
    """How much a counter grew; a drop is a reset, counted from zero (as Prometheus)."""
    increase = 0.0
    for (_, before), (_, after) in pairwise(samples):
        increase += after - before if after >= before else after
    return increase


def counter_rate(samples: Sequence[Sample]) -> float | None:
    """Per-second increase of a counter over the samples' time span."""
    if len(samples) < 2:
        return None
    span = samples[-1][0] - samples[0][0]
    return counter_increase(samples) / span if span > 0 else None


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are (upper bound, cumulative count)
    including ``+Inf``; linear interpolation inside the bucket that holds the rank."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    upper, count = buckets[index]
    if upper == math.inf:
        return buckets[-2][0] if len(buckets) > 1 else None
    lower, below = (0.0, 0.0) if index == 0 else buckets[index - 1]
    if index == 0 and upper <= 0:
        return upper
    if count == below:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


def aggregate(kind: Aggregate, samples: Sequence[Sample]) -> float | None:
    """The aggregate of the samples, or None when there is nothing to aggregate."""
    if kind == "count":
        return float(len(samples))
    if kind == "sum" and not samples:
        return 0.0  # nothing happened in the window: zero errors, zero bookings
    if not samples:
        return None
    if kind == "last":
        return samples[-1][1]
    if kind == "rate":
        return counter_rate(samples)
    values = [v for _, v in samples]
    if kind == "sum":
        return math.fsum(values)
    if kind == "avg":
        return math.fsum(values) / len(values)
    if kind == "min":
        return min(values)
    if kind == "max":
        return max(values)
    return quantile(values, 0.95 if kind == "p95" else 0.99)


def prune(samples: list[Sample], cutoff: float, cap: int) -> None:
    """Drop samples at or before ``cutoff``; keep at most ``cap``, the newest (bounded memory)."""
    drop = 0
    for at, _ in samples:
        if at > cutoff:
            break
        drop += 1
    if len(samples) - drop > cap:
        drop = len(samples) - cap
    if drop:
        del samples[:drop]
