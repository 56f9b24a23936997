"""Window aggregates over ``(time, value)`` samples: pure maths, no state."""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Callable, Sequence
from itertools import islice, pairwise
from operator import itemgetter
from typing import Literal

Aggregate = Literal["last", "count", "sum", "avg", "min", "max", "rate", "p95", "p99"]
Sample = tuple[float, float]
_value = itemgetter(1)  # map(_value, samples) iterates in C, without a list per call


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
    return ordered_bucket_quantile(q, sorted(buckets))


def ordered_bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``bucket_quantile`` of buckets already in order of their bounds."""
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


def _sum(samples: Sequence[Sample]) -> float:
    return math.fsum(map(_value, samples))


def _avg(samples: Sequence[Sample]) -> float | None:
    return math.fsum(map(_value, samples)) / len(samples) if samples else None


def _min(samples: Sequence[Sample]) -> float | None:
    return min(map(_value, samples)) if samples else None


def _max(samples: Sequence[Sample]) -> float | None:
    return max(map(_value, samples)) if samples else None


def _p95(samples: Sequence[Sample]) -> float | None:
    return quantile([v for _, v in samples], 0.95) if samples else None


def _p99(samples: Sequence[Sample]) -> float | None:
    return quantile([v for _, v in samples], 0.99) if samples else None


# One dispatch per evaluation, on the hot path: a dict beats a chain of comparisons.
_AGGREGATES: dict[str, Callable[[Sequence[Sample]], float | None]] = {
    "last": lambda samples: samples[-1][1] if samples else None,
    "count": lambda samples: float(len(samples)),
    "sum": _sum,  # nothing in the window sums to zero: zero errors, zero bookings
    "avg": _avg,
    "min": _min,
    "max": _max,
    "rate": counter_rate,
    "p95": _p95,
    "p99": _p99,
}


def aggregate(kind: Aggregate, samples: Sequence[Sample]) -> float | None:
    """The aggregate of the samples, or None when there is nothing to aggregate."""
    return _AGGREGATES[kind](samples)


def aggregator(kind: Aggregate) -> Callable[[Sequence[Sample]], float | None]:
    """``aggregate`` bound to one kind: for a caller that looks it up once."""
    return _AGGREGATES[kind]


def _expired(samples: list[Sample], cutoff: float, cap: int) -> int:
    """How many of the oldest samples leave: those at or before ``cutoff``, and beyond ``cap``."""
    drop = 0
    for at, _ in samples:
        if at > cutoff:
            break
        drop += 1
    return max(drop, len(samples) - cap)


def prune(samples: list[Sample], cutoff: float, cap: int) -> None:
    """Drop samples at or before ``cutoff``; keep at most ``cap``, the newest (bounded memory)."""
    if drop := _expired(samples, cutoff, cap):
        del samples[:drop]


def push(samples: list[Sample], at: float, value: float) -> None:
    """Add a sample, keeping ``samples`` in time order (a late one is inserted in place)."""
    if not samples or at >= samples[-1][0]:
        samples.append((at, value))
    else:
        insort(samples, (at, value))


def slide(samples: list[Sample], total: float, cutoff: float, cap: int) -> float:
    """``prune`` for a window that keeps a running ``total`` of its values: the new total.

    The leaving values are subtracted (their sum rounded once). When they outweigh what
    stays, the subtraction cancels and would leave mostly rounding error, so the total is
    then recomputed exactly: rare, and it keeps the error within a few ulps of the values
    in the window, never of values long gone. An emptied window sums to exactly 0.
    """
    drop = _expired(samples, cutoff, cap)
    if not drop:
        return total
    if drop == len(samples):
        samples.clear()
        return 0.0
    left = math.fsum(map(_value, islice(samples, drop)))
    del samples[:drop]
    total -= left
    return math.fsum(map(_value, samples)) if abs(left) > abs(total) else total
