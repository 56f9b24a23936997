"""Silences, maintenance windows and inhibition: they mute notifications, never state.

The evaluator decides and marks the alert event (``muted_by``); notifiers skip marked
events; the archiver keeps them. Matchers are shell-style patterns over the alert's
labels plus ``tenant``, ``service``, ``rule``, ``severity`` and ``category``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from schemas import UtcTime
from shared.configbase import ConfigStruct, Seconds

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
Matchers = dict[str, str]


def matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(fnmatchcase(labels.get(k, ""), v) for k, v in matchers.items())


class Silence(ConfigStruct, frozen=True, kw_only=True):
    """Mute alerts matching ``matchers`` from ``starts_at`` until ``ends_at``."""

    id: str
    matchers: Matchers
    starts_at: UtcTime
    ends_at: UtcTime
    created_by: str
    comment: str

    def mutes(self, labels: Mapping[str, str], at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and matches(self.matchers, labels)


class MaintenanceWindow(ConfigStruct, frozen=True, kw_only=True):
    """One-off (``starts_at``/``ends_at``) or weekly (``days``, ``start``, ``duration``)."""

    name: str
    matchers: Matchers = {}
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None
    days: list[Weekday] = []
    start: Annotated[str, msgspec.Meta(pattern=_CLOCK.pattern)] = "00:00"
    duration: Seconds = Seconds(0)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        weekly, once = bool(self.days), self.starts_at is not None or self.ends_at is not None
        if weekly == once or (once and (self.starts_at is None or self.ends_at is None)):
            raise ValueError("days: give either days+start+duration or starts_at+ends_at")

    def mutes(self, labels: Mapping[str, str], at: datetime) -> bool:
        return matches(self.matchers, labels) and self.open_at(at)

    def open_at(self, at: datetime) -> bool:
        if self.starts_at is not None and self.ends_at is not None:
            return self.starts_at <= at < self.ends_at
        local = at.astimezone(ZoneInfo(self.timezone))
        hour, minute = (int(x) for x in self.start.split(":"))
        for day in self.days:
            back = (local.weekday() - _DAYS.index(day)) % 7
            for weeks in (0, 7):  # a window opened last week may still be open
                date = (local - timedelta(days=back + weeks)).date()
                opens = datetime(date.year, date.month, date.day, hour, minute, tzinfo=local.tzinfo)
                if opens <= local < opens + timedelta(seconds=self.duration):
                    return True
        return False


class InhibitRule(ConfigStruct, frozen=True, kw_only=True):
    """While an alert matching ``source`` fires, mute alerts matching ``target`` that
    share the ``equal`` labels with it (a database outage mutes its dependants)."""

    name: str
    source: Matchers
    target: Matchers
    equal: list[str] = msgspec.field(default_factory=lambda: ["tenant"])


class Muting(msgspec.Struct, frozen=True, kw_only=True):
    silences: list[Silence] = []
    maintenance: list[MaintenanceWindow] = []
    inhibit: list[InhibitRule] = []

    def muted_by(
        self,
        fingerprint: str,
        labels: Mapping[str, str],
        at: datetime,
        firing: Mapping[str, Mapping[str, str]],
    ) -> str:
        """Why an alert with these labels is muted at ``at`` ("" when it is not)."""
        for silence in self.silences:
            if silence.mutes(labels, at):
                return f"silence:{silence.id}"
        for window in self.maintenance:
            if window.mutes(labels, at):
                return f"maintenance:{window.name}"
        for rule in self.inhibit:
            if not matches(rule.target, labels):
                continue
            for source, other in firing.items():
                if (
                    source != fingerprint
                    and matches(rule.source, other)
                    and all(other.get(k) == labels.get(k) for k in rule.equal)
                ):
                    return f"inhibited:{rule.name}:{source}"
        return ""
