"""The pure rule engine: table tests and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import AlertEvent, CheckResult, Status
from services.evaluator.engine import Engine
from services.evaluator.observation import from_result
from services.evaluator.rulebase import SeriesState
from services.evaluator.rules import ConsecutiveRule
from shared.configbase import Seconds

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)


def result(status: Status, at: datetime) -> CheckResult:
    return CheckResult(
        tenant="acme",
        service="shop",
        check="web",
        tier="critical",
        status=status,
        latency_ms=1.0,
        observed_at=at,
        details={"error": "HTTP 503"} if status == "unhealthy" else {},
    )


def run(
    rule: ConsecutiveRule, statuses: str, step: float = 10.0
) -> tuple[dict[str, SeriesState], list[tuple[int, AlertEvent]]]:
    """Feed statuses (h=healthy, d=degraded, u=unhealthy, ?=unknown) one per step."""
    codes: dict[str, Status] = {"h": "healthy", "d": "degraded", "u": "unhealthy", "?": "unknown"}
    engine, states = Engine([rule]), dict[str, SeriesState]()
    events = []
    for i, code in enumerate(statuses):
        for obs in from_result(result(codes[code], T0 + timedelta(seconds=i * step))):
            events += [(i, e) for e in engine.observe(states, obs)]
    return states, events


RULE = ConsecutiveRule(name="down", failures=3, successes=2)


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ("uu", []),
        ("uuu", [(2, "firing")]),
        ("uuuuuu", [(2, "firing")]),  # only changes are emitted
        ("uuuh", [(2, "firing")]),  # one success is not enough
        ("uuuhh", [(2, "firing"), (4, "resolved")]),
        ("uuuhuhh", [(2, "firing"), (6, "resolved")]),  # successes must be in a row
        ("uuhuu", []),  # failures must be in a row
        ("uu?u", [(3, "firing")]),  # unknown neither counts nor resets
        ("uuudd", [(2, "firing"), (4, "resolved")]),  # degraded is passing by default
    ],
)
def test_consecutive_transitions(statuses: str, expected: list[tuple[int, str]]) -> None:
    _, events = run(RULE, statuses)
    assert [(i, e.state) for i, e in events] == expected


def test_firing_event_describes_the_alert() -> None:
    _, events = run(RULE, "uuuhh")
    (_, firing), (_, resolved) = events
    assert firing.fingerprint == resolved.fingerprint
    assert firing.started_at == resolved.started_at == T0 + timedelta(seconds=20)
    assert resolved.ended_at == T0 + timedelta(seconds=40)
    assert firing.message == "3 unhealthy results in a row; last: HTTP 503"
    assert (firing.value, firing.threshold, firing.severity) == (3.0, 3.0, "critical")
    assert firing.event_id != resolved.event_id


def test_replaying_the_same_input_gives_the_same_event_ids() -> None:
    assert [e.event_id for _, e in run(RULE, "uuuhhuuu")[1]] == [
        e.event_id for _, e in run(RULE, "uuuhhuuu")[1]
    ]


def test_cooldown_delays_the_next_firing() -> None:
    rule = ConsecutiveRule(name="down", failures=1, successes=1, cooldown=Seconds(60))
    # resolved at step 1 (t=10s); failures at 20s..60s are inside the cooldown
    _, events = run(rule, "uhuuuuuuu", step=10)
    assert [(i, e.state) for i, e in events] == [(0, "firing"), (1, "resolved"), (7, "firing")]


def test_custom_failing_statuses() -> None:
    rule = ConsecutiveRule(name="slow", failures=2, failing=frozenset({"degraded", "unhealthy"}))
    assert [(i, e.state) for i, e in run(rule, "dduh")[1]] == [(1, "firing"), (3, "resolved")]


@given(st.text(alphabet="hdu?", max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_never_fires_without_n_failures_in_a_row(
    statuses: str, failures: int, successes: int
) -> None:
    rule = ConsecutiveRule(name="p", failures=failures, successes=successes)
    _, events = run(rule, statuses)
    states = [e.state for _, e in events]
    # firing and resolved strictly alternate, starting with firing
    assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (len(states) % 2)
    for i, event in events:
        recent = statuses[: i + 1].replace("?", "")
        tail = "u" * failures if event.state == "firing" else None
        if tail:
            assert recent.endswith(tail)
        else:
            assert all(c in "hd" for c in recent[-successes:])
