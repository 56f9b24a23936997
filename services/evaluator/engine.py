"""The pure rule engine: (state, result, now) -> (state, alert event or None).

No I/O, no clock, no environment: the stream adapter passes everything in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from schemas import AlertEvent, CheckResult, stable_id
from services.evaluator.rules import AnyRule, ConsecutiveRule

_PASSING = frozenset({"healthy", "degraded"})


class SeriesState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a rule remembers about one series (tenant, service, check)."""

    failing: int = 0
    passing: int = 0
    firing_since: datetime | None = None
    last_resolved: datetime | None = None


EMPTY = SeriesState()


def series_key(rule: AnyRule, result: CheckResult) -> str:
    return f"{rule.name}\x1f{result.tenant}\x1f{result.service}\x1f{result.check}"


def fingerprint(rule: AnyRule, result: CheckResult) -> str:
    return stable_id(rule.name, result.tenant, result.service, result.check)


def apply(
    rule: ConsecutiveRule, state: SeriesState, result: CheckResult, now: datetime
) -> tuple[SeriesState, AlertEvent | None]:
    """Count failing and passing results in a row; emit only on a change of state."""
    if result.status in rule.failing:
        state = msgspec.structs.replace(state, failing=state.failing + 1, passing=0)
    elif result.status in _PASSING:
        state = msgspec.structs.replace(state, passing=state.passing + 1, failing=0)
    else:
        return state, None  # unknown: neither evidence of failure nor of recovery

    if state.firing_since is None:
        cooled = state.last_resolved is None or (
            now - state.last_resolved >= timedelta(seconds=rule.cooldown)
        )
        if state.failing >= rule.failures and cooled:
            state = msgspec.structs.replace(state, firing_since=now)
            return state, _event(rule, result, state, "firing", now)
    elif state.passing >= rule.successes:
        event = _event(rule, result, state, "resolved", now)
        return msgspec.structs.replace(state, firing_since=None, last_resolved=now), event
    return state, None


def _event(
    rule: ConsecutiveRule, result: CheckResult, state: SeriesState, kind: str, now: datetime
) -> AlertEvent:
    assert state.firing_since is not None
    fp = fingerprint(rule, result)
    title = rule.title.format(check=result.check, service=result.service, tenant=result.tenant)
    if kind == "firing":
        error = result.details.get("error")
        message = f"{state.failing} {result.status} results in a row" + (
            f"; last: {error}" if error else ""
        )
        value = float(state.failing)
    else:
        message = f"{state.passing} passing results in a row"
        value = float(state.passing)
    return AlertEvent(
        event_id=stable_id(fp, kind, state.firing_since.isoformat()),
        fingerprint=fp,
        rule=rule.name,
        tenant=result.tenant,
        service=result.service,
        severity=rule.severity,
        state="firing" if kind == "firing" else "resolved",
        title=title,
        message=message,
        value=value,
        threshold=float(rule.failures if kind == "firing" else rule.successes),
        labels={"check": result.check, "tier": result.tier},
        started_at=state.firing_since,
        ended_at=now if kind == "resolved" else None,
    )
