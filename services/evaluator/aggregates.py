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


def counter_rate(samples: Sequence[Sample]) -> float | None:
    """Per-second increase of a counter; a drop is a reset, counted from zero (as Prometheus)."""
    if len(samples) < 2:
        return None
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        return None
    increase = 0.0
    for (_, before), (_, after) in pairwise(samples):
        increase += after - before if after >= before else after
    return increase / span


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
