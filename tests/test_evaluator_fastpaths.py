"""The evaluator's hot-path shortcuts agree with the plain definitions they replace."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from services.evaluator.aggregates import aggregate, aggregator
from services.evaluator.kinds.threshold import ThresholdRule, excess, holds
from services.evaluator.rulebase import SeriesState

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(value=finite, threshold=st.one_of(st.just(0.0), finite))
def test_inlined_above_verdict_matches_holds_and_excess(value: float, threshold: float) -> None:
    rule = ThresholdRule(name="r", source="m", threshold=threshold)
    state = SeriesState(rule="r", tenant="t", service="s", samples=[(1.0, value)])
    verdict = rule.verdict(state, 2.0, threshold)
    assert verdict is not None
    assert verdict.active == holds("above", value, threshold)
    assert verdict.excess == excess("above", value, threshold)
    assert verdict.threshold == threshold and type(verdict.threshold) is type(threshold)


@given(values=st.lists(finite, max_size=50))
def test_window_aggregates_match_their_definitions(values: list[float]) -> None:
    samples = [(float(i), v) for i, v in enumerate(values)]
    assert aggregate("sum", samples) == math.fsum(values)
    assert aggregator("sum")(samples) == math.fsum(values)
    if values:
        assert aggregate("avg", samples) == math.fsum(values) / len(values)
        assert aggregate("min", samples) == min(values)
        assert aggregate("max", samples) == max(values)
    else:
        assert [aggregate(k, samples) for k in ("avg", "min", "max")] == [None, None, None]
