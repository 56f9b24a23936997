"""The routing tree: which channels an alert event goes to, and with which templates.

A route matches on exact fields (tenant, service, rule, severity, category),
exact labels, and Alertmanager-style matchers: ``name=value``, ``name!=value``,
``name=~regex``, ``name!~regex`` (regexes are anchored). A matcher's name is an
alert field (tenant, service, rule, severity, state, category, source) or a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import msgspec

from schemas import AlertEvent, Severity
from services.notifier.templates import Templates
from shared.configbase import ConfigStruct, Seconds

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*')
_FIELDS = ("tenant", "service", "rule", "severity", "state", "category", "source")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None

    def __call__(self, alert: AlertEvent) -> bool:
        actual = field_value(alert, self.name)
        if self.regex is not None:
            return bool(self.regex.fullmatch(actual)) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")


@lru_cache(maxsize=1024)
def parse_matcher(text: str) -> Matcher:
    """``name<op>value`` into a Matcher; ValueError says what is wrong."""
    m = _MATCHER.fullmatch(text)
    if not m:
        raise ValueError(f"matcher {text!r} is not name=value, name!=value, name=~re or name!~re")
    name, op, value = m[1], m[2], m[3]
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"matcher {text!r}: bad regex: {exc}") from exc
    return Matcher(name, op, value, regex)


class RouteMatch(ConfigStruct, frozen=True, kw_only=True):
    """What a route takes; every condition must hold; an empty match takes every alert."""

    tenant: str | None = None
    service: str | None = None
    rule: str | None = None
    severity: Severity | None = None
    category: str | None = None
    labels: dict[str, str] = {}
    matchers: list[str] = []

    def __post_init__(self) -> None:
        for text in self.matchers:
            try:
                parse_matcher(text)
            except ValueError as exc:
                raise ValueError(f"matchers: {exc}") from exc


class Route(ConfigStruct, frozen=True, kw_only=True):
    match: RouteMatch = RouteMatch()
    channels: list[str]
    continue_: bool = msgspec.field(default=False, name="continue")
    templates: Templates | None = None
    # Grouping (see grouping.py): alerts with the same values of these fields/labels
    # make one message; empty means one message per alert event, at once.
    group_by: list[str] = []
    group_wait: Seconds = Seconds(30)
    group_interval: Seconds = Seconds(300)
    repeat_interval: Seconds = Seconds(4 * 3600)


def field_value(alert: AlertEvent, name: str) -> str:
    """An alert field (tenant, service, …) or else a label; empty when absent."""
    value = getattr(alert, name) if name in _FIELDS else alert.labels.get(name)
    return value or ""


def matches(match: RouteMatch, alert: AlertEvent) -> bool:
    exact = all(
        wanted is None or wanted == actual
        for wanted, actual in (
            (match.tenant, alert.tenant),
            (match.service, alert.service),
            (match.rule, alert.rule),
            (match.severity, alert.severity),
            (match.category, alert.category),
        )
    )
    return (
        exact
        and all(alert.labels.get(k) == v for k, v in match.labels.items())
        and all(parse_matcher(m)(alert) for m in match.matchers)
    )


def matching_routes(routes: list[Route], alert: AlertEvent) -> list[int]:
    """Indexes of the routes that take ``alert``, in walk order: a matching route
    stops the walk unless it says ``continue: true``."""
    taken: list[int] = []
    for i, route in enumerate(routes):
        if matches(route.match, alert):
            taken.append(i)
            if not route.continue_:
                break
    return taken


def destinations(routes: list[Route], alert: AlertEvent) -> list[tuple[str, Templates | None]]:
    """(channel name, templates of the first route that chose it) in route order, each
    channel once."""
    chosen: dict[str, Templates | None] = {}
    for i in matching_routes(routes, alert):
        for name in routes[i].channels:
            chosen.setdefault(name, routes[i].templates)
    return list(chosen.items())


def channels_for(routes: list[Route], alert: AlertEvent) -> list[str]:
    return [name for name, _ in destinations(routes, alert)]
