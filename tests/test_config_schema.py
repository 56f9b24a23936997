"""The configuration's JSON Schema: checked in, current, and true to the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared import configschema

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(configschema.SCHEMA_FILE.read_text())


def test_checked_in_config_schema_matches_the_structs() -> None:
    assert not configschema.drifted(), "run `vigil config schema` and commit the file"


def test_drift_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "config.schema.json"
    stale.write_bytes(configschema.rendered().replace(b'"tenants"', b'"tenant"', 1))
    assert configschema.drifted(stale)
    assert configschema.drifted(tmp_path / "missing.json")


def test_the_example_config_validates_against_the_schema() -> None:
    # Without ${ENV} values: the loader reads interpolated numbers leniently ("6379").
    data = yaml.safe_load((REPO / "deploy" / "docker" / "vigil.yaml").read_text())
    jsonschema.validate(data, SCHEMA)


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tenants": [{"id": "a", "nmae": "typo"}]}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"checks": [{"type": "no-such-monitor", "name": "x"}]}, SCHEMA)
