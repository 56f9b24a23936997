"""Silences, maintenance windows and inhibition: they mark events, state goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.evaluator.engine import Engine
from services.evaluator.muting import InhibitRule, MaintenanceWindow, Muting, Silence
from services.evaluator.rules import ThresholdRule
from shared.configbase import Seconds, dec_hook
from tests.engine_support import T0, Feed, obs

START = datetime.fromtimestamp(T0, UTC)
RULE = ThresholdRule(name="disk", source="disk", threshold=80, category="system")
DB_DOWN = ThresholdRule(
    name="db_down", source="db_up", op="below", threshold=1, category="database"
)


def silence(**matchers: str) -> Silence:
    return Silence(
        id="s1",
        matchers=matchers,
        starts_at=START,
        ends_at=START + timedelta(hours=1),
        created_by="ana",
        comment="disk migration",
    )


def test_a_silence_marks_matching_alerts_and_keeps_state() -> None:
    feed = Feed(Engine([RULE], muting=Muting(silences=[silence(service="shop")])))
    (muted,) = feed.send(obs("disk", 90, 0))
    (other,) = feed.send(obs("disk", 90, 0, service="cart"))
    assert (muted.muted_by, other.muted_by) == ("silence:s1", "")
    (resolved,) = feed.send(obs("disk", 10, 10))
    assert resolved.state == "resolved" and resolved.muted_by == "silence:s1"


def test_a_silence_ends() -> None:
    feed = Feed(Engine([RULE], muting=Muting(silences=[silence()])))
    assert feed.send(obs("disk", 90, 3600))[0].muted_by == ""


def test_a_silence_matches_labels_and_patterns() -> None:
    feed = Feed(Engine([RULE], muting=Muting(silences=[silence(rule="di*", tenant="acme")])))
    assert feed.send(obs("disk", 90, 0))[0].muted_by == "silence:s1"


@pytest.mark.parametrize(
    "local, muted",
    [
        ("2026-11-29T02:30:00+01:00", True),  # Sunday 02:30 in Berlin
        ("2026-11-29T01:59:00+01:00", False),
        ("2026-11-29T04:00:00+01:00", False),  # the window is 2 h
        ("2026-11-30T00:30:00+01:00", False),  # Monday
        ("2026-11-29T01:30:00+00:00", True),  # the same moment written in UTC
    ],
)
def test_weekly_maintenance_window_in_a_time_zone(local: str, muted: bool) -> None:
    window = MaintenanceWindow(
        name="sunday", days=["sun"], start="02:00", duration=Seconds(7200), timezone="Europe/Berlin"
    )
    assert window.open_at(datetime.fromisoformat(local)) is muted


def test_weekly_window_across_midnight_and_one_off_windows() -> None:
    late = MaintenanceWindow(name="late", days=["sat"], start="23:00", duration=Seconds(7200))
    assert late.open_at(datetime(2026, 11, 29, 0, 30, tzinfo=UTC))  # Sunday 00:30
    once = MaintenanceWindow(name="once", starts_at=START, ends_at=START + timedelta(minutes=5))
    feed = Feed(Engine([RULE], muting=Muting(maintenance=[once])))
    assert feed.send(obs("disk", 90, 60))[0].muted_by == "maintenance:once"


def test_maintenance_window_config_is_checked() -> None:
    with pytest.raises(msgspec.ValidationError, match="either days"):
        msgspec.convert({"name": "x"}, MaintenanceWindow, dec_hook=dec_hook)
    with pytest.raises(msgspec.ValidationError, match="unknown time zone"):
        msgspec.convert(
            {"name": "x", "days": ["mon"], "timezone": "Mars/Olympus"},
            MaintenanceWindow,
            dec_hook=dec_hook,
        )


def test_inhibition_mutes_dependants_of_the_same_tenant_only() -> None:
    inhibit = InhibitRule(name="db", source={"category": "database"}, target={"category": "system"})
    feed = Feed(Engine([DB_DOWN, RULE], muting=Muting(inhibit=[inhibit])))
    assert feed.send(obs("disk", 90, 0, service="cart"))[0].muted_by == ""  # before the outage
    (down,) = feed.send(obs("db_up", 0, 1, service="db"))
    assert down.muted_by == ""
    (inhibited,) = feed.send(obs("disk", 90, 2))
    (free,) = feed.send(obs("disk", 90, 2, tenant="globex"))
    assert inhibited.muted_by == f"inhibited:db:{down.fingerprint}" and free.muted_by == ""
    feed.send(obs("db_up", 1, 3, service="db"))  # the database is back
    assert feed.send(obs("disk", 90, 4, service="web"))[0].muted_by == ""


@given(
    st.lists(st.tuples(st.integers(1, 600), st.floats(0, 200)), min_size=1, max_size=40),
    st.integers(0, 6000),
    st.integers(0, 6000),
    st.sampled_from(["shop", "cart"]),
)
def test_muting_never_changes_what_fires_only_the_mark(
    steps: list[tuple[int, float]], start: int, length: int, service: str
) -> None:
    window = MaintenanceWindow(
        name="w",
        matchers={"service": service},
        starts_at=START + timedelta(seconds=start),
        ends_at=START + timedelta(seconds=start + length),
    )
    rule = ThresholdRule(name="disk", source="disk", threshold=80, repeat_interval=Seconds(900))
    plain, muted = Feed(Engine([rule])), Feed(Engine([rule], muting=Muting(maintenance=[window])))
    at = 0
    for gap, value in steps:
        at += gap
        for feed in (plain, muted):
            feed.send(obs("disk", value, at))
    strip = [msgspec.structs.replace(e, muted_by="") for _, e in muted.events]
    assert strip == [e for _, e in plain.events]
    for at_s, event in muted.events:
        inside = start <= at_s < start + length and service == "shop"
        if event.state == "firing":
            assert (event.muted_by == "maintenance:w") is inside
