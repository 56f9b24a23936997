"""Helpers for the pure engine tests: build observations, feed them, collect events."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import AlertEvent
from services.evaluator.engine import Engine
from services.evaluator.observation import Observation
from services.evaluator.rulebase import SeriesState

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp()


def obs(
    source: str,
    value: float,
    at: float,
    tenant: str = "acme",
    service: str = "shop",
    **labels: str,
) -> Observation:
    return Observation(tenant, service, source, value, T0 + at, labels)


class Feed:
    """An engine plus its states; every event is kept with the time it came out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, SeriesState] = {}
        self.events: list[tuple[float, AlertEvent]] = []

    def send(self, *observations: Observation) -> list[AlertEvent]:
        out = []
        for o in observations:
            new = self.engine.observe(self.states, o)
            self.events += [(o.at - T0, e) for e in new]
            out += new
        return out

    def tick(self, at: float) -> list[AlertEvent]:
        out = self.engine.tick(self.states, list(self.states), T0 + at)
        self.events += [(at, e) for e in out]
        return out

    def kinds(self) -> list[tuple[float, str, int]]:
        return [(at, e.state, e.notification_count) for at, e in self.events]
