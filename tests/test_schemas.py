from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from schemas import AlertEvent, CheckResult, MetricSample
from schemas.export import SCHEMA_DIR, drift, rendered


def test_checked_in_schema_files_match_the_structs() -> None:
    assert drift() == [], "run `vigil schema export` and commit schemas/*.json"


def test_drift_is_detected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name, body in rendered().items():
        (tmp_path / name).write_bytes(body)
    victim = next(iter(rendered()))
    (tmp_path / victim).write_bytes(b"{}")
    assert drift(tmp_path) == [victim]


def test_every_schema_file_is_documented() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    for name in rendered():
        assert name in readme


def test_outside_producer_json_decodes_with_defaults() -> None:
    raw = (
        b'{"tenant":"acme","service":"api","metric":"api.request.duration_ms",'
        b'"value":12.5,"observed_at":"2026-11-24T10:00:00Z","labels":{"route":"/x"},'
        b'"some_future_field":1}'
    )
    sample = msgspec.json.decode(raw, type=MetricSample)
    assert sample.value == 12.5
    assert sample.observed_at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert sample.schema_version == 1 and len(sample.event_id) == 32


@pytest.mark.parametrize(
    "raw, complaint",
    [
        (
            b'{"tenant":"a","service":"s","check":"c","tier":"core","status":"down",'
            b'"latency_ms":1,"observed_at":"2026-11-24T10:00:00Z"}',
            "status",
        ),
        (
            b'{"tenant":"a","service":"s","check":"c","tier":"core","status":"healthy",'
            b'"latency_ms":1,"observed_at":"2026-11-24T10:00:00"}',
            "observed_at",
        ),
        (
            b'{"tenant":"a","service":"s","check":"c","tier":"core","status":"healthy",'
            b'"latency_ms":-1,"observed_at":"2026-11-24T10:00:00Z"}',
            "latency_ms",
        ),
        (
            b'{"tenant":"","service":"s","check":"c","tier":"core","status":"healthy",'
            b'"latency_ms":1,"observed_at":"2026-11-24T10:00:00Z"}',
            "tenant",
        ),
    ],
)
def test_invalid_check_results_are_refused_naming_the_field(raw: bytes, complaint: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=complaint):
        msgspec.json.decode(raw, type=CheckResult)


def test_alert_event_round_trips() -> None:
    now = datetime.now(UTC)
    alert = AlertEvent(
        fingerprint="f",
        rule="r",
        tenant="t",
        service="s",
        severity="warning",
        state="firing",
        title="x",
        started_at=now,
        labels={"a": "b"},
    )
    assert msgspec.json.decode(msgspec.json.encode(alert), type=AlertEvent) == alert
