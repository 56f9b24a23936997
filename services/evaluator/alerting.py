"""The alert lifecycle, the same for every rule type: verdicts in, transitions out.

Only changes are emitted: ``firing`` (after the condition held for ``for``, and not
inside ``cooldown`` after the last resolve), ``renotify`` (still firing after
``repeat_interval``, or its priority rose: an escalation) and ``resolved`` (after the
condition stopped holding for ``keep_firing_for``). A firing inside ``dedup_window``
after the last resolve counts on the previous notification count instead of starting a
new alert at 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from schemas import AlertEvent, Priority, stable_id
from services.evaluator.recommendations import for_category
from services.evaluator.rulebase import RuleOptions, SeriesState, Verdict

Transition = Literal["firing", "renotify", "resolved"]
_RANK = {"": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def advance(
    opts: RuleOptions, state: SeriesState, verdict: Verdict | None, now: float
) -> Transition | None:
    """Move one series' alert along; returns the transition to announce, if any."""
    if verdict is None:
        return None  # no evidence either way
    if verdict.active:
        state.inactive_since = None
        if state.active_since is None:
            state.active_since = now
        if state.firing_since is None:
            kind = _maybe_fire(opts, state, now)
            if kind is not None:
                state.priority = priority(opts, verdict)
            return kind
        escalated = _RANK[priority(opts, verdict)] > _RANK.get(state.priority, 0)
        if escalated or (
            opts.repeat_interval and now - state.last_notified >= opts.repeat_interval
        ):
            state.notifications += 1
            state.last_notified = now
            state.priority = max(state.priority, priority(opts, verdict), key=_RANK.__getitem__)
            return "renotify"
        return None
    state.active_since = None
    if state.firing_since is None:
        return None
    if opts.keep_firing_for:
        if state.inactive_since is None:
            state.inactive_since = now
        if now - state.inactive_since < opts.keep_firing_for:
            return None
    return "resolved"


def _maybe_fire(opts: RuleOptions, state: SeriesState, now: float) -> Transition | None:
    assert state.active_since is not None
    if now - state.active_since < opts.for_:
        return None
    since_resolve = None if state.last_resolved is None else now - state.last_resolved
    if since_resolve is not None and since_resolve < opts.cooldown:
        return None
    deduped = since_resolve is not None and since_resolve < opts.dedup_window
    state.notifications = state.notifications + 1 if deduped else 1
    state.firing_since = state.last_notified = now
    return "firing"


def finish(state: SeriesState, now: float) -> None:
    """After a resolved event was built: the series is quiet again."""
    state.firing_since = state.inactive_since = None
    state.last_resolved = now
    state.muted_by = state.priority = ""


def priority(opts: RuleOptions, verdict: Verdict) -> Priority:
    if opts.priority is not None:
        return opts.priority
    if verdict.priority is not None:
        return verdict.priority
    if verdict.excess > 0.5:
        return "critical"
    return "high" if verdict.excess > 0.2 else "medium"


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def event(
    opts: RuleOptions,
    state: SeriesState,
    verdict: Verdict,
    kind: Transition,
    now: float,
    fingerprint: str,
    muted_by: str,
) -> AlertEvent:
    """The alert event announcing ``kind`` for this series."""
    assert state.firing_since is not None
    started = datetime.fromtimestamp(state.firing_since, UTC)
    fields = _Blank(state.labels, rule=opts.name, tenant=state.tenant, service=state.service)
    fields.setdefault("source", str(getattr(opts, "source", "")))
    return AlertEvent(
        event_id=stable_id(fingerprint, kind, started.isoformat(), str(state.notifications)),
        fingerprint=fingerprint,
        rule=opts.name,
        tenant=state.tenant,
        service=state.service,
        severity=opts.severity,
        state="resolved" if kind == "resolved" else "firing",
        title=opts.title.format_map(fields) if opts.title else opts.name,
        message=verdict.message,
        value=verdict.value,
        threshold=verdict.threshold,
        labels=dict(state.labels),
        started_at=started,
        ended_at=datetime.fromtimestamp(now, UTC) if kind == "resolved" else None,
        priority=priority(opts, verdict),
        category=opts.category,
        notification_count=max(1, state.notifications),
        recommendations=for_category(opts.category, opts.recommendations),
        runbook_url=opts.runbook_url,
        muted_by=muted_by,
    )
