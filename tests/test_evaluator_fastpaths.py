"""The evaluator's hot-path shortcuts agree with the plain definitions they replace."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from schemas import MetricSample
from services.evaluator.aggregates import Aggregate, aggregate, aggregator
from services.evaluator.engine import Engine, series_key
from services.evaluator.kinds.threshold import Op, ThresholdRule, excess, holds
from services.evaluator.observation import Observation, from_sample, from_samples
from services.evaluator.rulebase import SeriesState, copy_state
from shared.configbase import Seconds

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


ops = st.sampled_from(["above", "below", "eq", "ne"])
windowed = st.sampled_from(["last", "sum", "count", "avg", "max", "rate", "p95"])
values = st.one_of(finite, st.just(0.0))  # the adapter ignores non-finite values


@given(
    op=ops,
    aggregate=windowed,
    ratio=st.booleans(),
    threshold=st.one_of(st.just(0.0), finite),
    fed=st.lists(st.tuples(st.booleans(), st.integers(0, 600), values), max_size=30),
    now=st.integers(0, 900),
)
def test_holds_at_agrees_with_the_verdict(
    op: Op,
    aggregate: Aggregate,
    ratio: bool,
    threshold: float,
    fed: list[tuple[bool, int, float]],
    now: int,
) -> None:
    """The engine skips the verdict of a quiet series when ``holds_at`` says so."""
    rule = ThresholdRule(
        name="r",
        source="m",
        ratio_of="d" if ratio else None,
        op=op,
        aggregate=aggregate,
        window=Seconds(300),
        max_samples=10,
        threshold=threshold,
    )
    state = SeriesState(rule="r", tenant="t", service="s")
    for den, at, value in fed:
        source = "d" if den and ratio else "m"
        rule.observe(state, Observation("t", "s", source, value, float(at), {}))
    twin = copy_state(state)
    verdict = rule.verdict(twin, float(now), threshold)
    assert rule.holds_at(state, float(now), threshold) == (verdict is not None and verdict.active)
    # Both slid the windows alike (compared encoded: a NaN total equals itself there).
    assert msgspec.msgpack.encode(state) == msgspec.msgpack.encode(twin)


zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(0))])


@given(times=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), zones), max_size=20))
def test_from_samples_converts_times_as_from_sample(
    times: list[tuple[int, int, timezone]],
) -> None:
    base = datetime(2026, 11, 24, 12, tzinfo=UTC)
    samples = [
        MetricSample(
            tenant="t",
            service="s",
            metric="m",
            value=1.0,
            observed_at=(base + timedelta(seconds=s, microseconds=us)).astimezone(zone),
        )
        for s, us, zone in times
    ]
    assert from_samples(samples) == [from_sample(s) for s in samples]


@given(
    labels=st.dictionaries(st.sampled_from(["check", "queue", "le", "x"]), st.text(max_size=3)),
    by=st.sampled_from([[], ["queue"], ["queue", "x"]]),
)
def test_the_engine_keys_a_series_as_series_labels_says(
    labels: dict[str, str], by: list[str]
) -> None:
    rule = ThresholdRule(name="r", source="m", threshold=1.0, by=by)
    observation = Observation("t", "s", "m", 1.0, 0.0, labels)
    states: dict[str, SeriesState] = {}
    Engine([rule]).observe(states, observation)
    ((key, state),) = states.items()
    assert state.labels == rule.series_labels(observation)
    assert key == series_key("r", "t", "s", rule.series_labels(observation))
