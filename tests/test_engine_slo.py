"""SLO error budgets: multiwindow multi-burn-rate alerts (SRE workbook defaults)."""

from __future__ import annotations

import pytest

from services.evaluator.engine import Engine, budgets
from services.evaluator.kinds.slo import SloRule, add, since
from tests.engine_support import T0, Feed, obs

MIN, HOUR = 60.0, 3600.0
SLO = SloRule(name="slo", objective=0.999, bad="errors", total="requests")


def traffic(feed: Feed, start: float, end: float, error_ratio: float) -> None:
    """1000 requests a minute with the given share of errors, one scrape per minute."""
    at = start
    while at < end:
        feed.send(obs("requests", 1000, at), obs("errors", 1000 * error_ratio, at))
        at += MIN


def test_buckets_add_up_and_stay_bounded() -> None:
    buckets: list[tuple[float, float]] = []
    for minute in range(100):
        add(buckets, minute * MIN, 1.0, keep_after=minute * MIN - 10 * MIN)
    add(buckets, 95 * MIN, 2.0, keep_after=0)  # a late observation joins its bucket
    assert len(buckets) == 11 and since(buckets, 95 * MIN) == 7.0


def test_a_fast_burn_pages_within_minutes_and_a_healthy_service_never() -> None:
    feed = Feed(Engine([SLO]))
    traffic(feed, 0, 2 * HOUR, 0.0005)  # half the allowed error rate: fine
    assert feed.events == []
    traffic(feed, 2 * HOUR, 2 * HOUR + 10 * MIN, 0.2)  # 200x burn
    # The 1x (3 d) pair fires first, then the alert escalates as faster pairs burn.
    assert [(e.priority, e.threshold, e.notification_count) for _, e in feed.events] == [
        ("medium", 1.0, 1),
        ("high", 6.0, 2),
        ("critical", 14.4, 3),
    ]
    at, page = feed.events[-1]
    assert at - 2 * HOUR <= 5 * MIN  # paged within minutes
    assert "over 1 h and" in page.message and "budget left" in page.message


def test_a_slow_burn_reaches_the_ticket_pair_not_the_page() -> None:
    feed = Feed(Engine([SLO]))
    traffic(feed, 0, 8 * HOUR, 0.008)  # 8x burn: over 6x, under 14.4x
    assert [(e.priority, e.threshold) for _, e in feed.events] == [("medium", 1.0), ("high", 6.0)]


def test_budget_remaining_over_the_period() -> None:
    feed = Feed(Engine([SLO]))
    traffic(feed, 0, HOUR, 0.0005)  # half the budget's rate for an hour: half spent
    left = budgets(feed.engine, feed.states, T0 + HOUR)
    assert list(left.values()) == [pytest.approx(0.5)]


def test_check_results_count_as_events() -> None:
    rule = SloRule(name="up", objective=0.99)
    feed = Feed(Engine([rule]))
    for minute in range(70):
        status = "unhealthy" if minute >= 60 else "healthy"
        o = obs("status", 0, minute * MIN, check="web")
        feed.send(type(o)(o.tenant, o.service, o.source, o.value, o.at, o.labels, status))
    assert feed.events and all(e.state == "firing" for _, e in feed.events)
    assert feed.events[0][0] >= 60 * MIN  # only the unhealthy results burn the budget


def test_the_rule_needs_total_exactly_for_metric_slos() -> None:
    with pytest.raises(ValueError, match="total"):
        SloRule(name="x", objective=0.9, bad="errors")
