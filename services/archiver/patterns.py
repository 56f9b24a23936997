"""Alert pattern analysis and SLA maths: pure functions over plain records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AlertFacts:
    rule: str
    fingerprint: str
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    state: str


@dataclass(frozen=True, slots=True)
class Patterns:
    total: int
    most_common_rule: str | None
    by_rule: dict[str, int]
    by_hour: list[int]  # alerts started in each UTC hour of the day, 0..23
    peak_hour: int | None
    mtta_s: float | None  # mean time to acknowledge, over acknowledged alerts
    mttr_s: float | None  # mean time to resolve, over resolved alerts (not expired ones)
    recurring: list[tuple[str, int]]  # fingerprints that started more than once


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def analyse(alerts: Sequence[AlertFacts]) -> Patterns:
    by_rule = Counter(a.rule for a in alerts)
    by_hour = [0] * 24
    for a in alerts:
        by_hour[a.started_at.hour] += 1
    # Ties go to the alphabetically first rule and the earliest hour: stable output.
    most_common = min(by_rule, key=lambda r: (-by_rule[r], r)) if by_rule else None
    peak = max(range(24), key=lambda h: (by_hour[h], -h)) if alerts else None
    acked = [
        (a.acknowledged_at - a.started_at).total_seconds() for a in alerts if a.acknowledged_at
    ]
    resolved = [
        (a.resolved_at - a.started_at).total_seconds()
        for a in alerts
        if a.resolved_at and a.state == "resolved"
    ]
    fingerprints = Counter(a.fingerprint for a in alerts)
    recurring = sorted(
        ((f, n) for f, n in fingerprints.items() if n > 1), key=lambda x: (-x[1], x[0])
    )
    return Patterns(
        total=len(alerts),
        most_common_rule=most_common,
        by_rule=dict(sorted(by_rule.items())),
        by_hour=by_hour,
        peak_hour=peak,
        mtta_s=_mean(acked),
        mttr_s=_mean(resolved),
        recurring=recurring,
    )


@dataclass(frozen=True, slots=True)
class Sla:
    target_percent: float
    uptime_percent: float | None
    met: bool
    allowed_failures: float  # the error budget, in failed executions
    failures: int
    budget_remaining_percent: float | None  # negative when overspent


def sla(successes: int, failures: int, target_percent: float) -> Sla:
    """Uptime against a target; the error budget is the share of executions allowed to fail."""
    counted = successes + failures
    uptime = 100.0 * successes / counted if counted else None
    allowed = counted * (100.0 - target_percent) / 100.0
    if allowed:
        remaining: float | None = 100.0 * (1 - failures / allowed)
    else:
        remaining = None if failures else 100.0
    return Sla(
        target_percent=target_percent,
        uptime_percent=uptime,
        met=uptime is None or uptime >= target_percent,
        allowed_failures=allowed,
        failures=failures,
        budget_remaining_percent=remaining,
    )
