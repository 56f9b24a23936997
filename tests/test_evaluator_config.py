"""The evaluator's configuration sections, as YAML: valid files load, bad ones name the line."""

from __future__ import annotations

import pytest

from services.evaluator.rules import AbsenceRule, ApplicationErrorRule, ThresholdRule
from shared.config import parse_config
from shared.errors import ConfigError

FULL = """\
tenants: [{id: acme}, {id: globex}]
default_rules: true
threshold_overrides:
  globex: {disk_usage: 95, health_check_failing: 5}
rules:
  - name: bookings_dropped
    type: threshold
    source: bookings
    op: below
    aggregate: sum
    window: 1h
    threshold: 10
    for: 15m
    keep_firing_for: 10m
    repeat_interval: 4h
    dedup_window: 1h
    cooldown: 30m
    category: business
    priority: high
    recommendations: ["Check the booking provider."]
    match: {tenant: acme, labels: {region: eu-*}}
  - {name: quiet, type: absence, source: heartbeat, after: 10m}
  - {name: errors, type: application_error, resolve_after: 2h}
  - name: disk_usage
    type: threshold
    source: disk_used_percent
    threshold: 70
silences:
  - id: s1
    matchers: {service: shop}
    starts_at: "2026-11-24T10:00:00Z"
    ends_at: "2026-11-24T12:00:00+01:00"
    created_by: ana
    comment: migration
maintenance:
  - {name: sunday, days: [sun], start: "02:00", duration: 2h, timezone: Europe/Berlin}
  - {name: once, starts_at: "2026-12-01T22:00:00Z", ends_at: "2026-12-01T23:00:00Z"}
inhibit:
  - {name: db, source: {category: database}, target: {category: "*"}}
"""


def test_every_evaluator_section_loads() -> None:
    config = parse_config(FULL, "vigil.yaml", {})
    names = [r.name for r in config.all_rules]
    assert names[:4] == ["bookings_dropped", "quiet", "errors", "disk_usage"]
    assert len(names) == len(set(names)) == 4 + 14  # ours replace the pack's disk_usage
    bookings, quiet, errors, disk = config.all_rules[:4]
    assert isinstance(bookings, ThresholdRule) and bookings.for_ == 900
    assert bookings.match.labels == {"region": "eu-*"}
    assert isinstance(quiet, AbsenceRule) and quiet.after == 600
    assert isinstance(errors, ApplicationErrorRule) and errors.resolve_after == 7200
    assert isinstance(disk, ThresholdRule) and disk.threshold == 70
    assert config.muting.inhibit[0].equal == ["tenant"]
    assert len(config.muting.maintenance) == 2 and config.silences[0].created_by == "ana"


@pytest.mark.parametrize(
    "patch, line, field, reason",
    [
        ("  globex: {disk_usage: 95", 4, "threshold_overrides.nobody", "unknown tenant"),
        ("health_check_failing: 5}", 4, "threshold_overrides.globex.nope", "unknown rule"),
        ("timezone: Europe/Berlin", 36, "maintenance[0].timezone", "unknown time zone"),
        ("op: below", 9, "rules[0].op", "Invalid enum value"),
        ('start: "02:00"', 36, "maintenance[0].start", "regex"),
    ],
)
def test_mistakes_are_refused_with_line_and_field(
    patch: str, line: int, field: str, reason: str
) -> None:
    bad = {
        "  globex: {disk_usage: 95": "  nobody: {disk_usage: 95",
        "health_check_failing: 5}": "nope: 5}",
        "timezone: Europe/Berlin": "timezone: Mars/Olympus",
        "op: below": "op: under",
        'start: "02:00"': 'start: "25:00"',
    }[patch]
    with pytest.raises(ConfigError) as caught:
        parse_config(FULL.replace(patch, bad), "vigil.yaml", {})
    assert (caught.value.line, caught.value.field) == (line, field)
    assert reason in caught.value.reason
