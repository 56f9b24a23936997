"""Application errors reported by other systems become deduplicated application alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import ApplicationError, Priority
from services.evaluator.engine import Engine
from services.evaluator.kinds.application import ApplicationErrorRule, impact
from services.evaluator.observation import from_error
from tests.engine_support import T0, Feed

RULE = ApplicationErrorRule(name="app")


def error(
    at: float, kind: str = "TimeoutError", source: str = "checkout-api", **kw: int
) -> ApplicationError:
    return ApplicationError(
        tenant="acme",
        service="shop",
        source=source,
        error_type=kind,
        message="upstream timed out",
        stack_trace="Traceback ...",
        endpoint="/pay",
        observed_at=datetime.fromtimestamp(T0, UTC) + timedelta(seconds=at),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "kind, users, count, priority",
    [
        ("DatabaseError", 0, 1, "critical"),
        ("psycopg.OperationalError: SQL", 0, 1, "critical"),
        ("TimeoutError", 11, 1, "critical"),
        ("TimeoutError", 10, 6, "high"),
        ("TimeoutError", 10, 5, "medium"),
    ],
)
def test_priority_from_impact(kind: str, users: int, count: int, priority: Priority) -> None:
    assert impact(kind, users, count) == priority


def test_repeats_are_deduplicated_by_type_and_source() -> None:
    feed = Feed(Engine([RULE]))
    (first,) = feed.send(from_error(error(0, affected_users=2)))
    assert feed.send(from_error(error(60, error_count=3))) == []  # the same error: no new alert
    (other,) = feed.send(from_error(error(60, source="billing-worker")))
    assert first.fingerprint != other.fingerprint
    assert (first.category, first.priority, first.labels) == (
        "application", "medium", {"error_type": "TimeoutError", "source": "checkout-api"}
    )  # fmt: skip
    assert (
        first.message
        == "TimeoutError at /pay: upstream timed out (1 occurrences, 2 users affected)"
    )
    assert first.title == "TimeoutError in checkout-api"


def test_escalation_and_repeat_interval_renotify_and_quiet_resolves() -> None:
    feed = Feed(Engine([RULE]))
    feed.send(from_error(error(0)))
    (escalated,) = feed.send(from_error(error(1800, error_count=5)))  # 6 occurrences: high
    assert (escalated.notification_count, escalated.value, escalated.priority) == (2, 6.0, "high")
    assert feed.send(from_error(error(3600))) == []  # deduplicated, nothing new to say
    (again,) = feed.send(from_error(error(1800 + 3600)))  # the repeat interval has passed
    assert (again.notification_count, again.value) == (3, 8.0)
    assert feed.tick(5400 + 3599) == []
    (resolved,) = feed.tick(5400 + 3600)
    assert resolved.state == "resolved"
