from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import load_config, parse_config
from shared.demo import DEMO_CONFIG
from shared.errors import ConfigError

DEMO_ENV = {
    "VIGIL_DEMO_TARGET_URL": "http://127.0.0.1:8080",
    "VIGIL_DEMO_REDIS_HOST": "127.0.0.1",
    "VIGIL_DEMO_REDIS_PORT": "6379",
    "VIGIL_DEMO_POSTGRES_HOST": "127.0.0.1",
    "VIGIL_DEMO_POSTGRES_PORT": "5432",
    "VIGIL_REDIS_URL": "redis://127.0.0.1:6379/0",  # the self-watch checks
    "VIGIL_OPS_PORT": "9464",
}

GOOD = """\
tenants:
  - id: acme
checks:
  - name: web
    type: http
    tenant: acme
    service: shop
    tier: critical
    url: https://shop.example/health
    interval: 30s
rules:
  - name: down
    type: consecutive
channels:
  - name: ops
    type: webhook
    url: ${HOOK_URL}
routes:
  - channels: [ops]
"""


def test_demo_config_loads() -> None:
    config = load_config(DEMO_CONFIG, DEMO_ENV)
    assert {c.kind for c in config.checks} == {"http", "tcp", "stream_lag", "prometheus"}
    redis_check = next(c for c in config.checks if c.name == "redis-tcp")
    assert redis_check.port == 6379  # type: ignore[union-attr]


def test_good_config_interpolates_and_resolves_intervals() -> None:
    config = parse_config(GOOD, "vigil.yaml", {"HOOK_URL": "http://hooks.local/x"})
    assert config.channels[0].url == "http://hooks.local/x"  # type: ignore[union-attr]
    assert config.interval(config.checks[0]) == 30.0
    assert config.tiers["external"] == 1800.0


@pytest.mark.parametrize(
    "old, new, line, field, reason",
    [
        ("type: http", "type: gopher", 5, "checks[0].type", "Invalid value 'gopher'"),
        ("interval: 30s", "interval: soon", 10, "checks[0].interval", "duration"),
        (
            "    tier: critical\n",
            "    tier: critical\n    colour: red\n",
            9,
            "checks[0].colour",
            "unknown field",
        ),
        ("    url: https://shop.example/health\n", "", 4, "checks[0].url", "missing required"),
        ("url: https://shop.example/health", "url: ftp://shop", 9, "checks[0].url", "http(s) URL"),
        ("tier: critical", "tier: platinum", 8, "checks[0].tier", "unknown tier"),
        ("channels: [ops]", "channels: [pager]", 19, "routes[0].channels[0]", "unknown channel"),
        ("  - id: acme", "  - id: other", 6, "checks[0].tenant", "unknown tenant"),
        ("url: ${HOOK_URL}", "url: ${NOPE}", 17, "channels[0].url", "NOPE"),
        (
            "    url: ${HOOK_URL}\n",
            "    url: [unclosed\n",
            18,
            "channels[0].url[0]",
            "invalid YAML",
        ),
    ],
)
def test_bad_config_names_file_line_and_field(
    old: str, new: str, line: int, field: str, reason: str
) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace(old, new), "vigil.yaml", {"HOOK_URL": "http://h/x"})
    error = caught.value
    assert (error.file, error.line, error.field) == ("vigil.yaml", line, field)
    assert reason in error.reason
    assert str(error).startswith(f"vigil.yaml:{line}: ")


def test_secret_from_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "hook"
    secret.write_text("http://from-file/x\n")
    config = parse_config(GOOD, "vigil.yaml", {"HOOK_URL_FILE": str(secret)})
    assert config.channels[0].url == "http://from-file/x"  # type: ignore[union-attr]


def test_check_config_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("interval: 30s", "interval: soon"))
    vigil = [sys.executable, "-c", "from shared.cli import main; main()"]
    env = {"HOOK_URL": "http://h/x", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [*vigil, "check-config", str(bad)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 2
    assert f"{bad}:10: checks[0].interval: expected a duration" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    out = subprocess.run(
        [*vigil, "check-config", str(good)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "1 checks" in out.stdout
