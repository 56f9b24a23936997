"""What every rule type shares: selector, alert options, verdicts and series state.

A rule type (one module in ``kinds/``) only says how observations update a series'
memory and whether its condition holds; ``alerting.py`` turns verdicts into alerts the
same way for every type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Annotated, Protocol

import msgspec

from schemas import Category, Priority, Severity
from services.evaluator.observation import Observation
from shared.configbase import ConfigStruct, Seconds

Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class Selector(ConfigStruct, frozen=True, kw_only=True):
    """Which series a rule watches; each field is a shell-style pattern."""

    tenant: str = "*"
    service: str = "*"
    check: str = "*"
    labels: dict[str, str] = {}

    def matches(self, obs: Observation) -> bool:
        return (
            fnmatchcase(obs.tenant, self.tenant)
            and fnmatchcase(obs.service, self.service)
            and (self.check == "*" or fnmatchcase(obs.labels.get("check", ""), self.check))
            and all(fnmatchcase(obs.labels.get(k, ""), v) for k, v in self.labels.items())
        )

    @property
    def everything(self) -> bool:
        # Most rules watch everything: skip the pattern matching on the hot path.
        return self == _ALL


_ALL = Selector()


class RuleOptions(ConfigStruct, frozen=True, kw_only=True):
    """Alert options every rule type accepts (see docs/configuration.md)."""

    name: str
    match: Selector = Selector()
    severity: Severity = "warning"
    priority: Priority | None = None  # None: from how far the value is past the threshold
    category: Category = "availability"
    for_: Seconds = msgspec.field(default=Seconds(0), name="for")
    keep_firing_for: Seconds = Seconds(0)
    repeat_interval: Seconds = Seconds(0)  # 0: never re-notify
    dedup_window: Seconds = Seconds(0)
    cooldown: Seconds = Seconds(0)
    recommendations: list[str] | None = None  # None: the category's defaults
    title: str = ""
    # What to do about it: a URL, or a path joined to the config's runbook_base_url.
    runbook_url: str = ""


class Verdict(msgspec.Struct, gc=False):
    """A rule's condition at one moment: holds or not, with what it measured.

    Built per evaluation, so a C-built struct kept out of the cyclic GC (see Observation).
    """

    active: bool
    value: float
    threshold: float
    text: str | Callable[[Verdict], str]  # a callable is only called when a human reads it
    excess: float = 0.0  # how far past the threshold, relative (0.5 = 50 % over)
    priority: Priority | None = None  # a rule type that judges impact itself says so here

    @property
    def message(self) -> str:
        return self.text if isinstance(self.text, str) else self.text(self)


class SeriesState(msgspec.Struct, kw_only=True, array_like=True, omit_defaults=True, gc=False):
    """Everything one rule remembers about one series; mutated in place by the engine.

    ``gc=False``: tens of thousands of these live for the process' lifetime and each
    batch copies the ones it touches; tracked, every full pass of the cyclic garbage
    collector walked them all. A state holds strings, numbers and lists of number pairs:
    no reference cycle can pass through it.
    """

    rule: str
    tenant: str
    service: str
    labels: dict[str, str] = {}
    # rule memory
    failing: int = 0
    passing: int = 0
    status: str = ""
    error: str = ""
    samples: list[tuple[float, float]] = []
    den: list[tuple[float, float]] = []
    last_seen: float = 0.0
    # alert lifecycle (POSIX seconds)
    active_since: float | None = None
    inactive_since: float | None = None
    firing_since: float | None = None
    last_notified: float = 0.0
    notifications: int = 0
    last_resolved: float | None = None
    muted_by: str = ""
    buckets: dict[str, list[tuple[float, float]]] = {}  # histogram: `le` -> counter samples
    evaluated_at: float = 0.0  # for rules that evaluate at most once a minute (slo)
    priority: str = ""  # of the last notification: a higher one re-notifies (escalation)
    # Running sums of ``samples`` and ``den`` values (sliding-window sums in O(1)). Derived:
    # recomputed exactly from the samples whenever a state is built or loaded.
    total: float = 0.0
    den_total: float = 0.0

    def __post_init__(self) -> None:
        # Runs on decoding too: a checkpoint (also one from before these fields) resumes
        # with exact sums.
        if self.samples:
            self.total = math.fsum(v for _, v in self.samples)
        if self.den:
            self.den_total = math.fsum(v for _, v in self.den)


# A shallow copy in C (msgspec's stubs do not declare it): a third of what
# msgspec.structs.replace costs, which also re-runs __post_init__.
_shallow_copy: Callable[[SeriesState], SeriesState] = SeriesState.__copy__  # type: ignore[attr-defined]


def copy_state(state: SeriesState) -> SeriesState:
    """A copy a batch can mutate without touching the committed state."""
    copy = _shallow_copy(state)
    copy.samples = state.samples.copy()
    copy.den = state.den.copy()
    copy.buckets = {le: s.copy() for le, s in state.buckets.items()} if state.buckets else {}
    return copy


def lifecycle(state: SeriesState) -> tuple[object, ...]:
    """The alert-lifecycle part of a state: what a tick must never lose."""
    return (
        state.active_since,
        state.inactive_since,
        state.firing_since,
        state.last_notified,
        state.notifications,
        state.last_resolved,
        state.muted_by,
        state.priority,
        state.evaluated_at,
    )


class Rule(Protocol):
    """One rule type: how observations update a series, and whether the condition holds."""

    @property
    def name(self) -> str: ...
    @property
    def match(self) -> Selector: ...
    @property
    def options(self) -> RuleOptions: ...
    @property
    def threshold(self) -> float: ...
    @property
    def timed(self) -> bool:
        """Whether the verdict can change with time alone (needs ticks)."""
        ...

    def sources(self) -> frozenset[str]: ...
    def series_labels(self, obs: Observation) -> dict[str, str]: ...
    def observe(self, state: SeriesState, obs: Observation) -> None: ...
    def verdict(self, state: SeriesState, now: float, threshold: float) -> Verdict | None: ...
