"""The pure rule engine: (series states, observation or tick, now) -> alert events.

No I/O, no clock, no environment: the stream adapter passes everything in. For speed
the engine mutates the series states it is given in place; the adapter says which to
checkpoint (``touched``), or hands it copies (``StateView``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from schemas import AlertEvent, stable_id
from services.evaluator.alerting import advance, event, finish
from services.evaluator.muting import Muting
from services.evaluator.observation import Observation
from services.evaluator.rulebase import SeriesState, Verdict
from services.evaluator.rules import AnyRule, SloRule, ThresholdRule


class States(Protocol):
    """Where the engine finds and keeps series states (a dict, or a batch's copies)."""

    def get(self, key: str, /) -> SeriesState | None: ...
    def __setitem__(self, key: str, state: SeriesState, /) -> None: ...


SEP = "\x1f"
_NO_LABELS: dict[str, str] = {}  # shared by every unlabelled series, never mutated
Holds = Callable[[SeriesState, float, float], bool]  # (state, now, threshold)


def series_key(rule: str, tenant: str, service: str, labels: Mapping[str, str]) -> str:
    if not labels:  # the common case, kept cheap
        return f"{rule}{SEP}{tenant}{SEP}{service}"
    if len(labels) == 1:  # the next most common (`by: [queue]`): no sort, no join
        ((name, value),) = labels.items()
        return f"{rule}{SEP}{tenant}{SEP}{service}{SEP}{name}={value}"
    parts = [rule, tenant, service, *(f"{k}={v}" for k, v in sorted(labels.items()))]
    return SEP.join(parts)


def fingerprint(key: str) -> str:
    return stable_id(*key.split(SEP))


class Engine:
    """Rules indexed by the observation source they read, plus muting and overrides."""

    def __init__(
        self,
        rules: Sequence[AnyRule],
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        muting: Muting | None = None,
    ) -> None:
        self.rules = {r.name: r for r in rules}
        self.slo_rules = {r.name: r for r in rules if isinstance(r, SloRule)}
        self.by_source: dict[str, list[tuple[AnyRule, bool, Holds | None, bool]]] = {}
        for rule in rules:
            # A rule type that can say whether its condition holds without building a
            # verdict lets a quiet series skip the verdict (most observations).
            holds = rule.holds_at if isinstance(rule, ThresholdRule) else None
            # A threshold rule without `by` labels its series with the check, if any.
            byless = isinstance(rule, ThresholdRule) and not rule.by
            for source in rule.sources():
                entry = (rule, rule.match.everything, holds, byless)
                self.by_source.setdefault(source, []).append(entry)
        # overrides: tenant -> rule name -> threshold
        self.overrides = {(t, r): v for t, m in (overrides or {}).items() for r, v in m.items()}
        self.muting = muting or Muting()
        self.firing: dict[str, dict[str, str]] = {}  # fingerprint -> labels, for inhibition

    def restore(self, states: Mapping[str, SeriesState]) -> None:
        """Rebuild the firing set (for inhibition) from loaded states."""
        self.firing = {
            fingerprint(k): self._alert_labels(s) for k, s in states.items() if s.firing_since
        }

    def observe(
        self, states: States, obs: Observation, touched: dict[str, SeriesState] | None = None
    ) -> Sequence[AlertEvent]:
        """Feed one observation to every rule that reads its source; ``now`` is its time.

        Every state it reads or creates is also put in ``touched`` (a batch's
        checkpoint), when given. Nearly every observation changes no alert: that case
        allocates nothing to return.
        """
        rules = self.by_source.get(obs.source)
        if not rules:
            return ()  # most metrics feed no rule: cost nothing more
        out: list[AlertEvent] | None = None
        tenant, service, at, overrides = obs.tenant, obs.service, obs.at, self.overrides
        for rule, everything, holds, byless in rules:
            if not everything and not rule.match.matches(obs):
                continue
            # _NO_LABELS: what series_labels() would say, without the call
            plain = byless and "check" not in obs.labels
            labels = _NO_LABELS if plain else rule.series_labels(obs)
            if labels:
                key = series_key(rule.name, tenant, service, labels)
            else:  # series_key's common case, inlined: this runs per rule per observation
                key = f"{rule.name}{SEP}{tenant}{SEP}{service}"
            state = states.get(key)
            if state is None:
                state = states[key] = SeriesState(
                    rule=rule.name, tenant=tenant, service=service, labels=labels
                )
            if touched is not None:
                touched[key] = state
            rule.observe(state, obs)
            threshold = rule.threshold
            if overrides:
                threshold = overrides.get((tenant, rule.name), threshold)
            if (
                holds is not None
                and state.active_since is None
                and state.firing_since is None
                and not holds(state, at, threshold)
            ):
                continue  # a quiet series staying quiet: no verdict to build
            verdict = rule.verdict(state, at, threshold)
            if verdict is None:
                continue
            if not verdict.active and state.firing_since is None:
                state.active_since = None  # all advance() would do: the usual, quiet case
                continue
            if (alert := self._announce(rule, key, state, verdict, at)) is not None:
                out = [alert] if out is None else [*out, alert]
        return () if out is None else out

    def tick(self, states: States, keys: Iterable[str], now: float) -> list[AlertEvent]:
        """Re-evaluate time-based rules (``for``, windows, absence) without new data."""
        out: list[AlertEvent] = []
        for key in keys:
            state = states.get(key)
            rule = self.rules.get(state.rule) if state is not None else None
            if state is None or rule is None or not rule.timed:
                continue
            if (alert := self._evaluate(rule, key, state, now)) is not None:
                out.append(alert)
        return out

    def _evaluate(
        self, rule: AnyRule, key: str, state: SeriesState, now: float
    ) -> AlertEvent | None:
        threshold = rule.threshold
        if self.overrides:
            threshold = self.overrides.get((state.tenant, rule.name), threshold)
        verdict = rule.verdict(state, now, threshold)
        return None if verdict is None else self._announce(rule, key, state, verdict, now)

    def _announce(
        self, rule: AnyRule, key: str, state: SeriesState, verdict: Verdict, now: float
    ) -> AlertEvent | None:
        """Advance the series' alert; the event announcing its transition, if any."""
        kind = advance(rule, state, verdict, now)
        if kind is None:
            return None
        fp = fingerprint(key)
        labels = self._alert_labels(state)
        if kind == "resolved":
            muted = state.muted_by  # a resolve is muted when its firing was
            self.firing.pop(fp, None)
        else:
            at = datetime.fromtimestamp(now, UTC)
            muted = state.muted_by = self.muting.muted_by(fp, labels, at, self.firing)
            self.firing[fp] = labels
        alert = event(rule, state, verdict, kind, now, fp, muted)
        if kind == "resolved":
            finish(state, now)
        return alert

    def _alert_labels(self, state: SeriesState) -> dict[str, str]:
        rule = self.rules.get(state.rule)
        return state.labels | {
            "tenant": state.tenant,
            "service": state.service,
            "rule": state.rule,
            "severity": rule.severity if rule else "",
            "category": rule.category if rule else "",
        }


def budgets(engine: Engine, states: Mapping[str, SeriesState], now: float) -> dict[str, float]:
    """Error budget left per SLO series (series key -> share of the period's budget)."""
    slo = engine.slo_rules
    if not slo:
        return {}  # the usual case: no per-state work on every batch
    return {
        key: slo[state.rule].budget_remaining(state, now)
        for key, state in states.items()
        if state.rule in slo
    }


def timed_keys(engine: Engine, states: Mapping[str, SeriesState]) -> list[str]:
    """The series whose verdict can change with time alone."""
    return [k for k, s in states.items() if (r := engine.rules.get(s.rule)) and r.timed]
