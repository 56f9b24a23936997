"""Read-only views of the engine: ``vigil rules check`` and the dry-run replay.

Nothing here writes anywhere: both work on copies of the states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from schemas import AlertEvent
from services.evaluator.engine import Engine
from services.evaluator.observation import Observation
from services.evaluator.rulebase import SeriesState, Verdict, copy_state


def _where(state: SeriesState) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(state.labels.items()) if v)
    return f"{state.tenant}/{state.service}" + (f" [{labels}]" if labels else "")


def check_lines(
    engine: Engine,
    states: Mapping[str, SeriesState],
    now: float,
    only: str | None = None,
    verbose: bool = False,
) -> list[str]:
    """One line per rule, ``[FIRING] name: …`` or ``[OK] name: …``; with ``verbose``
    one more line per series."""
    by_rule: dict[str, list[tuple[SeriesState, Verdict | None]]] = {n: [] for n in engine.rules}
    for state in states.values():
        rule = engine.rules.get(state.rule)
        if rule is None or (only and rule.name != only):
            continue
        threshold = engine.overrides.get((state.tenant, rule.name), rule.threshold)
        fresh = copy_state(state)
        fresh.evaluated_at = 0.0  # no once-a-minute shortcut: this is what a human asked for
        by_rule[rule.name].append((state, rule.verdict(fresh, now, threshold)))
    lines: list[str] = []
    for name, series in by_rule.items():
        if only and name != only:
            continue
        active = [(s, v) for s, v in series if v is not None and v.active]
        if active:
            state, worst = max(active, key=lambda sv: sv[1].excess if sv[1] else 0.0)
            message = worst.message if worst else ""
            more = f" and {len(active) - 1} more" if len(active) > 1 else ""
            lines.append(f"[FIRING] {name}: {message} — {_where(state)}{more}")
        elif any(v is not None for _, v in series):
            lines.append(f"[OK] {name}: {len(series)} series within threshold")
        else:
            lines.append(f"[OK] {name}: no data")
        if verbose:
            for state, verdict in series:
                mark = "FIRING" if verdict and verdict.active else "ok"
                text = verdict.message if verdict else "no data"
                lines.append(f"    {mark:<6} {_where(state)}: {text}")
    return lines


def replay(engine: Engine, observations: Iterable[Observation]) -> list[AlertEvent]:
    """The alert events these observations would produce from an empty state."""
    states: dict[str, SeriesState] = {}
    events: list[AlertEvent] = []
    for obs in observations:
        events += engine.observe(states, obs)
    return events
