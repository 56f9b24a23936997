"""Threshold rules, windows and the alert lifecycle in the pure engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.evaluator.engine import Engine
from services.evaluator.kinds.threshold import Op
from services.evaluator.rules import AbsenceRule, ThresholdRule
from shared.configbase import Seconds
from tests.engine_support import T0, Feed, obs


def rule(**kw: object) -> ThresholdRule:
    fields: dict[str, object] = {"name": "r", "source": "m", "threshold": 10.0} | kw
    return ThresholdRule(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "op, values, fires_at",
    [
        ("above", [5, 10, 11], 2),
        ("below", [12, 10, 9], 2),  # an inverse threshold: alert when the value drops
        ("eq", [9, 11, 10], 2),
        ("ne", [10, 10, 3], 2),
    ],
)
def test_comparisons(op: Op, values: list[float], fires_at: int) -> None:
    feed = Feed(Engine([rule(op=op)]))
    for i, v in enumerate(values):
        feed.send(obs("m", v, i))
    assert feed.kinds() == [(fires_at, "firing", 1)]


def test_message_priority_and_category() -> None:
    r = rule(
        source="latency", aggregate="p95", threshold=2.0, subject="p95 latency", unit="s",
        category="performance",
    )  # fmt: skip
    (alert,) = Feed(Engine([r])).send(obs("latency", 5.23, 0, check="web"))
    assert alert.message == "p95 latency is 5.23 s (threshold 2 s, exceeded by 162 %)"
    assert (alert.priority, alert.category, alert.labels) == (
        "critical",
        "performance",
        {"check": "web"},
    )
    assert alert.recommendations and "latency" in alert.recommendations[0]


@pytest.mark.parametrize(
    "value, priority",
    [(10.5, "medium"), (12.0, "medium"), (12.5, "high"), (15.0, "high"), (15.1, "critical")],
)
def test_priority_from_how_far_over(value: float, priority: str) -> None:
    (alert,) = Feed(Engine([rule()])).send(obs("m", value, 0))
    assert alert.priority == priority


def test_rule_can_fix_priority_and_recommendations() -> None:
    r = rule(priority="low", recommendations=["Call Bob."])
    (alert,) = Feed(Engine([r])).send(obs("m", 100, 0))
    assert (alert.priority, alert.recommendations) == ("low", ["Call Bob."])


def test_ratio_of_two_series_over_a_window() -> None:
    r = rule(
        source="err", ratio_of="req", aggregate="sum", window=Seconds(300), threshold=0.05,
        subject="5xx error rate", unit="%", scale=100,
    )  # fmt: skip
    feed = Feed(Engine([r]))
    feed.send(obs("req", 100, 0), obs("err", 3, 1))  # 3 %
    assert feed.events == []
    feed.send(obs("req", 100, 60), obs("err", 12, 61))  # 15 / 200 = 7.5 %
    ((_, alert),) = feed.events
    assert alert.message == "5xx error rate is 7.5 % (threshold 5 %, exceeded by 50 %)"
    feed.send(obs("req", 1000, 400))  # the errors left the window: 0 / 1000
    assert feed.kinds()[-1] == (400, "resolved", 1)


def test_counter_rate_survives_a_reset() -> None:
    r = rule(aggregate="rate", window=Seconds(600), threshold=1.0)
    feed = Feed(Engine([r]))
    feed.send(obs("m", 100, 0), obs("m", 150, 50), obs("m", 20, 100))  # reset: +50 +20 in 100 s
    assert feed.events == []
    feed.send(obs("m", 160, 150))  # +140: 210 in 150 s = 1.4/s
    assert [e.value for _, e in feed.events] == [pytest.approx(1.4)]


def test_for_waits_and_ticks_fire_without_new_data() -> None:
    feed = Feed(Engine([rule(for_=Seconds(300))]))
    feed.send(obs("m", 20, 0))
    assert feed.tick(299) == []
    assert [a.state for a in feed.tick(300)] == ["firing"]


def test_for_resets_when_the_condition_breaks() -> None:
    feed = Feed(Engine([rule(for_=Seconds(300))]))
    feed.send(obs("m", 20, 0), obs("m", 1, 200), obs("m", 20, 250))
    assert feed.tick(500) == []
    assert [a.state for a in feed.tick(550)] == ["firing"]


def test_keep_firing_for_holds_through_a_blip() -> None:
    feed = Feed(Engine([rule(keep_firing_for=Seconds(120))]))
    feed.send(obs("m", 20, 0), obs("m", 1, 10), obs("m", 20, 100), obs("m", 1, 200))
    assert feed.kinds() == [(0, "firing", 1)]
    feed.send(obs("m", 1, 320))
    assert feed.kinds() == [(0, "firing", 1), (320, "resolved", 1)]


def test_repeat_interval_renotifies_with_a_count() -> None:
    feed = Feed(Engine([rule(repeat_interval=Seconds(3600))]))
    for minute in range(0, 180, 10):
        feed.send(obs("m", 20, minute * 60))
    assert feed.kinds() == [(0, "firing", 1), (3600, "firing", 2), (7200, "firing", 3)]
    ids = [e.event_id for _, e in feed.events]
    assert len(set(ids)) == 3 and len({e.fingerprint for _, e in feed.events}) == 1


def test_dedup_window_counts_on_instead_of_a_new_alert() -> None:
    feed = Feed(Engine([rule(dedup_window=Seconds(600))]))
    feed.send(obs("m", 20, 0), obs("m", 1, 60), obs("m", 20, 120))  # again within 10 min
    feed.send(obs("m", 1, 180), obs("m", 20, 1000))  # again after 10 min: a new alert
    assert [c for _, k, c in feed.kinds() if k == "firing"] == [1, 2, 1]


def test_cooldown_blocks_refiring() -> None:
    feed = Feed(Engine([rule(cooldown=Seconds(600))]))
    feed.send(obs("m", 20, 0), obs("m", 1, 60), obs("m", 20, 120), obs("m", 20, 660))
    assert feed.kinds() == [(0, "firing", 1), (60, "resolved", 1), (660, "firing", 1)]


def test_series_are_separate_by_tenant_service_and_by_labels() -> None:
    feed = Feed(Engine([rule(by=["queue"])]))
    feed.send(
        obs("m", 20, 0, queue="a"), obs("m", 20, 0, queue="b"), obs("m", 20, 0, tenant="other")
    )
    assert len({e.fingerprint for _, e in feed.events}) == 3


def test_tenant_override_of_a_threshold() -> None:
    feed = Feed(Engine([rule()], overrides={"big": {"r": 50.0}}))
    feed.send(obs("m", 20, 0, tenant="big"), obs("m", 20, 0, tenant="acme"))
    assert [e.tenant for _, e in feed.events] == ["acme"]
    assert feed.send(obs("m", 60, 1, tenant="big"))[0].threshold == 50.0


def test_absence_fires_on_a_tick_and_resolves_on_data() -> None:
    r = AbsenceRule(name="quiet", source="heartbeat", after=Seconds(600))
    feed = Feed(Engine([r]))
    feed.send(obs("heartbeat", 1, 0))
    assert feed.tick(599) == []
    (alert,) = feed.tick(600)
    assert alert.message == "no heartbeat data for 600 s (threshold 600 s)"
    assert [a.state for a in feed.send(obs("heartbeat", 1, 700))] == ["resolved"]


def test_window_memory_is_bounded() -> None:
    feed = Feed(Engine([rule(aggregate="sum", window=Seconds(86400), max_samples=50)]))
    for i in range(1000):
        feed.send(obs("m", 0.001, i))
    (state,) = feed.states.values()
    assert len(state.samples) == 50


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2000), st.floats(-1e6, 1e6)), min_size=1, max_size=60),
    st.sampled_from(["count", "sum", "avg", "min", "max", "p95", "p99", "last"]),
    st.integers(1, 900),
)
def test_window_maths_against_a_brute_force_oracle(
    points: list[tuple[int, float]], agg: str, window: int
) -> None:
    points.sort(key=lambda p: p[0])
    r = rule(aggregate=agg, window=Seconds(window), threshold=1e300, max_samples=10_000)
    feed = Feed(Engine([r]))
    for at, value in points:
        feed.send(obs("m", value, at))
    now = points[-1][0]
    inside = [v for at, v in points if at > now - window]
    (state,) = feed.states.values()
    got = r.value(state, T0 + now)
    oracle = {
        "count": float(len(inside)),
        "sum": sum(inside),
        "avg": sum(inside) / len(inside),
        "min": min(inside),
        "max": max(inside),
        "p95": sorted(inside)[-(-95 * len(inside) // 100) - 1],
        "p99": sorted(inside)[-(-99 * len(inside) // 100) - 1],
        "last": inside[-1],
    }[agg]
    assert got == pytest.approx(oracle, rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 120), st.booleans()), min_size=1, max_size=40),
    st.integers(1, 600),
)
def test_a_for_rule_never_fires_before_its_duration(
    steps: list[tuple[int, bool]], hold: int
) -> None:
    feed = Feed(Engine([rule(for_=Seconds(hold))]))
    at, held_since = 0, None
    for gap, bad in steps:
        at += gap
        fired = feed.send(obs("m", 20 if bad else 1, at)) + feed.tick(at)
        held_since = (held_since if held_since is not None else at) if bad else None
        for alert in fired:
            if alert.state == "firing":
                assert held_since is not None and at - held_since >= hold
