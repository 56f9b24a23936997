"""The routing tree: which channels an alert event goes to."""

from __future__ import annotations

from schemas import AlertEvent
from shared.config import Route, RouteMatch


def matches(match: RouteMatch, alert: AlertEvent) -> bool:
    return all(
        wanted is None or wanted == actual
        for wanted, actual in (
            (match.tenant, alert.tenant),
            (match.service, alert.service),
            (match.rule, alert.rule),
            (match.severity, alert.severity),
        )
    )


def channels_for(routes: list[Route], alert: AlertEvent) -> list[str]:
    """Channel names in route order, each once; a matching route stops the walk
    unless it says ``continue: true``."""
    chosen: list[str] = []
    for route in routes:
        if matches(route.match, alert):
            chosen += [c for c in route.channels if c not in chosen]
            if not route.continue_:
                break
    return chosen
