"""Incremental windows (running sums, buckets kept in order) against recomputing from scratch."""

from __future__ import annotations

import math
from bisect import insort

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.evaluator.aggregates import Aggregate, aggregate, bucket_quantile, counter_increase
from services.evaluator.engine import Engine
from services.evaluator.rulebase import SeriesState, copy_state
from services.evaluator.rules import ThresholdRule
from shared.configbase import Seconds
from tests.engine_support import T0, obs

Sample = tuple[float, float]
values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(0, 100).map(float),  # counts: the usual case, where sums must be exact
)
# (seconds since the previous step, may be negative: a late arrival; which series; value)
steps = st.lists(
    st.tuples(st.integers(-60, 120), st.sampled_from(["err", "req"]), values),
    min_size=1,
    max_size=80,
)


class Model:
    """The windows as the engine kept them before running sums: lists pruned, then recomputed."""

    def __init__(self, rule: ThresholdRule) -> None:
        self.rule = rule
        self.err: list[Sample] = []
        self.req: list[Sample] = []

    def add(self, source: str, at: float, value: float) -> None:
        samples = self.err if source == "err" else self.req
        if samples and at < samples[-1][0]:
            insort(samples, (at, value))  # a late arrival
        else:
            samples.append((at, value))
        if len(samples) > self.rule.max_samples:
            del samples[0]

    def value(self, now: float) -> float | None:
        kind: Aggregate = self.rule.aggregate
        self._prune(self.err, now)
        value = aggregate(kind, self.err)
        if value is None:
            return None
        self._prune(self.req, now)
        total = aggregate(kind, self.req)
        return None if not total else value / total

    def _prune(self, samples: list[Sample], now: float) -> None:
        inside = [s for s in samples if s[0] > now - self.rule.window]
        samples[:] = inside[-self.rule.max_samples :]


def fsum(samples: list[Sample]) -> float:
    return math.fsum(v for _, v in samples)


@settings(max_examples=300, deadline=None)
@given(
    steps,
    st.sampled_from(["sum", "avg", "count"]),
    st.integers(1, 600),
    st.integers(1, 20),
)
def test_running_window_sums_match_recomputing_them(
    moves: list[tuple[int, str, float]], kind: Aggregate, window: int, cap: int
) -> None:
    rule = ThresholdRule(
        name="r", source="err", ratio_of="req", aggregate=kind, window=Seconds(window),
        max_samples=cap, threshold=1e300,
    )  # fmt: skip
    engine, states, model = Engine([rule]), dict[str, SeriesState](), Model(rule)
    clock = 0
    for gap, source, value in moves:
        clock = max(0, clock + gap)
        value = abs(value) + 1 if source == "req" else value  # request counts: positive
        engine.observe(states, obs(source, value, clock))
        model.add(source, T0 + clock, value)
        expected = model.value(T0 + clock)
        (state,) = states.values()
        assert (state.samples, state.den) == (model.err, model.req)
        assert state.total == pytest.approx(fsum(state.samples), rel=1e-12, abs=1e-6)
        assert state.den_total == pytest.approx(fsum(state.den), rel=1e-12, abs=1e-6)
        got = rule.value(state, T0 + clock)
        assert (got is None) == (expected is None)
        if got is not None and expected is not None:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=200), st.integers(1, 50))
def test_sums_of_counts_stay_exact(counts: list[int], cap: int) -> None:
    rule = ThresholdRule(
        name="r", source="m", aggregate="sum", window=Seconds(30), max_samples=cap, threshold=1e300
    )
    engine, states = Engine([rule]), dict[str, SeriesState]()
    for i, count in enumerate(counts):
        engine.observe(states, obs("m", float(count), i))
    (state,) = states.values()
    assert rule.value(state, T0 + len(counts) - 1) == sum(counts[-min(cap, 30) :])


def test_a_huge_value_leaving_the_window_leaves_no_rounding_behind() -> None:
    rule = ThresholdRule(name="r", source="m", aggregate="sum", window=Seconds(60), threshold=1.0)
    engine, states = Engine([rule]), dict[str, SeriesState]()
    engine.observe(states, obs("m", 1e17, 0))
    for at in range(1, 10):
        engine.observe(states, obs("m", 0.1, at))
    (state,) = states.values()
    # 1e17 swallowed every 0.1 added after it: subtracting it back would leave 0.
    assert rule.value(state, T0 + 65) == math.fsum([0.1] * 4)  # 6..9 s are left


def test_a_checkpoint_restores_exact_sums_and_a_copy_is_independent() -> None:
    state = SeriesState(rule="r", tenant="t", service="s", samples=[(1.0, 0.1), (2.0, 0.2)])
    state.total = 123.0  # drifted, or written by a release without running sums
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=SeriesState)
    assert restored.total == math.fsum([0.1, 0.2]) and restored.den_total == 0.0
    copy = copy_state(restored)
    copy.samples.append((3.0, 5.0))
    copy.total += 5.0
    assert restored.samples == [(1.0, 0.1), (2.0, 0.2)] and restored.total == 0.30000000000000004


BOUNDS = ("0.5", "1", "2", "5", "+Inf", "bogus")


@settings(max_examples=100, deadline=None)
@given(st.permutations(BOUNDS), st.lists(st.integers(0, 20), min_size=6, max_size=6))
def test_histogram_buckets_in_any_arrival_order(order: list[str], adds: list[int]) -> None:
    rule = ThresholdRule(
        name="p95", source="h", histogram=True, aggregate="p95", window=Seconds(300),
        threshold=1e300,
    )  # fmt: skip
    engine, states = Engine([rule]), dict[str, SeriesState]()
    cumulative = dict(zip(BOUNDS, [sum(adds[: i + 1]) for i in range(len(BOUNDS))], strict=True))
    for at, counts in ((0, dict.fromkeys(BOUNDS, 0)), (60, cumulative)):
        for le in order:
            engine.observe(states, obs("h", float(counts[le]), at, le=le))
    (state,) = states.values()
    assert list(state.buckets) == list(BOUNDS)  # ordered by bound once, not per evaluation
    expected = bucket_quantile(
        0.95, [(float(le), counter_increase(state.buckets[le])) for le in BOUNDS[:-1]]
    )
    assert rule.value(state, T0 + 60) == expected
