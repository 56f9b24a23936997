"""p95/p99 from Prometheus histogram buckets, as histogram_quantile computes them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.evaluator.aggregates import bucket_quantile, quantile
from services.evaluator.engine import Engine
from services.evaluator.rules import ThresholdRule
from shared.configbase import Seconds
from tests.engine_support import Feed, obs

INF = math.inf
BOUNDS = (0.5, 1.0, 2.0, 5.0, INF)


def test_interpolates_inside_the_bucket_that_holds_the_rank() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (INF, 100.0)]
    assert bucket_quantile(0.95, buckets) == pytest.approx(0.75)
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "buckets, expected",
    [
        ([(1.0, 0.0), (INF, 0.0)], None),  # nothing observed
        ([(1.0, 5.0)], None),  # no +Inf bucket: not a valid histogram
        ([(1.0, 1.0), (INF, 10.0)], 1.0),  # the rank is in +Inf: the highest finite bound
    ],
)
def test_edge_cases(buckets: list[tuple[float, float]], expected: float | None) -> None:
    assert bucket_quantile(0.95, buckets) == expected


@given(st.lists(st.floats(0, 9.99), min_size=1, max_size=200), st.sampled_from([0.95, 0.99]))
def test_the_estimate_lies_in_the_bucket_of_the_true_quantile(
    values: list[float], q: float
) -> None:
    buckets = [(b, float(sum(v <= b for v in values))) for b in BOUNDS]
    estimate = bucket_quantile(q, buckets)
    true = quantile(values, q)
    upper = next(b for b in BOUNDS if true <= b)
    lower = max([0.0, *(b for b in BOUNDS if b < upper)])
    assert estimate is not None
    if upper == INF:
        assert estimate == 5.0
    else:
        assert lower <= estimate <= upper


def test_a_histogram_rule_uses_the_increase_over_the_window() -> None:
    rule = ThresholdRule(
        name="p95",
        source="http_request_duration_seconds_bucket",
        histogram=True,
        aggregate="p95",
        window=Seconds(300),
        threshold=2.0,
        subject="p95 latency",
        unit="s",
    )
    feed = Feed(Engine([rule]))

    def scrape(at: float, counts: tuple[float, ...]) -> None:
        for bound, count in zip(("0.5", "1", "2", "5", "+Inf"), counts, strict=True):
            feed.send(obs(rule.source, count, at, le=bound))

    scrape(0, (1000, 1000, 1000, 1000, 1000))  # history before the window: all fast
    scrape(60, (1000, 1000, 1000, 1000, 1000))
    assert feed.events == []
    scrape(120, (1010, 1020, 1030, 1100, 1100))  # 100 new requests, 70 of them 2-5 s
    (alert,) = [e for _, e in feed.events]
    # rank 95 of 100 falls in (2, 5]: 2 + 3 * (95 - 30) / 70
    assert alert.value == pytest.approx(2 + 3 * 65 / 70)
    assert alert.message.startswith("p95 latency is 4.79 s (threshold 2 s")
    assert alert.labels == {}  # `le` does not split the series
