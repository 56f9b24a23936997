"""Static checks of deploy/: no Docker engine or cluster runs here, so the files are
validated as files (Kubernetes schemas, structure), and every command they name must
exist in the ``vigil`` CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from shared.cli import app
from shared.config import load_config
from shared.runner import CONSOLE, ROLES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMMANDS = set(get_command(app).commands)  # type: ignore[attr-defined]


def vigil_invocation_is_valid(args: list[str]) -> bool:
    if args[:1] == ["vigil"]:
        args = args[1:]
    if args[0] == "run":
        return len(args) == 2 and args[1] in (*ROLES, CONSOLE, "all")
    return args[0] in COMMANDS


def test_dockerfile_has_a_non_root_target_per_service() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\S+)$", text, re.M)
    assert set(targets) >= {*ROLES, CONSOLE, "migrate", "build", "runtime"}
    assert "USER 10001" in text
    for target, cmd in re.findall(r"^FROM runtime AS (\S+)\nCMD (\[.*\])$", text, re.M):
        args = yaml.safe_load(cmd)
        assert vigil_invocation_is_valid(args), (target, args)


def test_compose_services_and_config() -> None:
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {*ROLES, "redis", "postgres", "migrate"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    for role in (*ROLES, CONSOLE):
        assert services[role]["build"]["target"] == role
        assert services[role]["environment"]["VIGIL_REDIS_URL"].startswith("redis://")
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    config = load_config(DEPLOY / "docker" / "vigil.yaml", {})
    assert config.checks


def kubernetes_docs() -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "vigil.yaml").read_text()) if d]


def test_kubernetes_manifests_match_the_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in kubernetes_docs():
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_kubernetes_deployments_are_wired_to_health_endpoints(tmp_path: Path) -> None:
    docs = kubernetes_docs()
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    probes = [d for d in deployments if d["metadata"]["name"].startswith("vigil-probe-")]
    assert {p["metadata"]["name"] for p in probes} == {
        f"vigil-probe-{t}" for t in ("critical", "core", "integration", "external")
    }
    for deployment in deployments:
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert vigil_invocation_is_valid(container["args"])
        # The console is ready when it serves its API; the pipeline's services on /readyz.
        ready = "/api/schema/openapi.json" if container["name"] == CONSOLE else "/readyz"
        assert container["readinessProbe"]["httpGet"]["path"] == ready
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["securityContext"]["runAsNonRoot"] is True
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} >= {"vigil-console"}
    [service] = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == CONSOLE  # type: ignore[index]
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
    path = tmp_path / "vigil.yaml"
    path.write_text(config_map["data"]["vigil.yaml"])  # type: ignore[index]
    assert load_config(path, {}).checks


def test_systemd_units_run_valid_commands() -> None:
    for unit in (DEPLOY / "systemd").glob("*.service"):
        [exec_start] = re.findall(r"^ExecStart=(.*)$", unit.read_text(), re.M)
        args = exec_start.split()[1:]
        if "%i" in args:
            assert all(vigil_invocation_is_valid(["run", role]) for role in ROLES)
        else:
            assert vigil_invocation_is_valid(args), unit.name


def test_every_setting_deploy_names_is_one_vigil_reads() -> None:
    # Settings reads the process's settings; `vigil demo` sets the demo config's variables.
    sources = [DEPLOY.parent / "shared" / name for name in ("settings.py", "demo.py")]
    read = {n for p in sources for n in re.findall(r'"(VIGIL_[A-Z_]+)"', p.read_text())}
    named: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in {"", ".yaml", ".service"}:
            named |= set(re.findall(r"\b(VIGIL_[A-Z_]+)\b", path.read_text()))
    assert "VIGIL_PROBE_TIERS" in named
    unknown = {n for n in named if n not in read and n.removesuffix("_FILE") not in read}
    assert not unknown, f"deploy/ names settings Vigil does not read: {sorted(unknown)}"
