"""A fixed-bucket latency histogram: mergeable by adding counts, so hourly rollups
add up to any range and still yield percentiles (stored percentiles would not).

Bucket ``i`` counts latencies in ``(BOUNDS[i-1], BOUNDS[i]]`` ms; the last bucket
is unbounded. Bounds grow by ~19 % a step, so an estimate is within that of the truth.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

GROWTH = 1.1892  # 2 ** 0.25: four buckets per doubling
BOUNDS: tuple[float, ...] = tuple(round(0.1 * GROWTH**i, 4) for i in range(80))  # to ~98 s
SIZE = len(BOUNDS) + 1


def bucket(latency_ms: float) -> int:
    return bisect_left(BOUNDS, latency_ms)


def counts(latencies: Iterable[float]) -> list[int]:
    out = [0] * SIZE
    for value in latencies:
        out[bucket(value)] += 1
    return out


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    out = [0] * SIZE
    for h in histograms:
        for i, n in enumerate(h):
            out[i] += n
    return out


def quantile(histogram: Sequence[int], q: float, low: float, high: float) -> float | None:
    """The ``q`` quantile (0..1), interpolated linearly inside its bucket and clamped
    to the observed ``low``..``high`` (as Prometheus' histogram_quantile does)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(histogram):
        if n and seen + n >= rank:
            lower = max(BOUNDS[i - 1] if i else 0.0, low)
            upper = min(BOUNDS[i] if i < len(BOUNDS) else high, high)
            if upper <= lower:
                return lower
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return high
