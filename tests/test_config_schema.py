"""The configuration's JSON Schema: checked in, current, and true to the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared import configref, configschema

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


def test_checked_in_config_reference_matches_the_structs() -> None:
    assert not configref.drifted(), "run `vigil config reference` and commit the file"


def test_the_reference_has_every_section_and_key(tmp_path: Path) -> None:
    text = configref.rendered()
    for name, node in SCHEMA["$defs"].items():
        assert f"\n## {name}\n" in text
        for key in node.get("properties", {}):
            assert f"| `{key}` |" in text or key == "type", (name, key)
    assert "| `url` | string | **required** |" in text
    assert "| `timeout` | duration | `5s` |" in text  # durations read as written
    stale = tmp_path / "config-reference.md"
    stale.write_text(text.replace("## Tenant\n", "## Tenants\n"))
    assert configref.drifted(stale) and configref.drifted(tmp_path / "missing.md")
