"""The YAML configuration: tenants, checks, rules, channels and routes.

``load_config`` refuses a bad file with a ``ConfigError`` naming the file, the
line and the field. ``${NAME}`` in any string is replaced by the environment
variable NAME (or the contents of the file named by NAME_FILE), so secrets and
addresses stay out of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from services.archiver.settings import ArchiveConfig
from services.evaluator.defaults import DEFAULT_RULES
from services.evaluator.muting import InhibitRule, MaintenanceWindow, Muting, Silence
from services.evaluator.rules import AnyRule
from services.notifier.channels import AnyChannelConfig
from services.notifier.intake.config import IntakeConfig
from services.notifier.routing import Route as Route
from services.notifier.routing import RouteMatch as RouteMatch
from services.probe.monitors import AnyCheck
from shared import yamlguard
from shared.configbase import ConfigStruct, Seconds, dec_hook
from shared.errors import ConfigError, SettingsError
from shared.netguard import EgressPolicy
from shared.settings import env_value

DEFAULT_TIERS = {
    "critical": Seconds(60),
    "core": Seconds(300),
    "integration": Seconds(900),
    "external": Seconds(1800),
}


class Tenant(ConfigStruct, frozen=True, kw_only=True):
    id: str
    name: str = ""


class Config(ConfigStruct, frozen=True, kw_only=True):
    tenants: list[Tenant] = []
    tiers: dict[str, Seconds] = msgspec.field(default_factory=lambda: dict(DEFAULT_TIERS))
    checks: list[AnyCheck] = []
    rules: list[AnyRule] = []
    default_rules: bool = False  # add the shipped rule pack (docs/alert-thresholds.md)
    # Prefix for rules' relative runbook_url (the default pack links docs/runbooks/...):
    # e.g. the address where your team browses this repository's docs.
    runbook_base_url: str = ""
    threshold_overrides: dict[str, dict[str, float]] = {}  # tenant -> rule -> threshold
    silences: list[Silence] = []
    maintenance: list[MaintenanceWindow] = []
    inhibit: list[InhibitRule] = []
    channels: list[AnyChannelConfig] = []
    routes: list[Route] = []
    intake: IntakeConfig | None = None
    archive: ArchiveConfig = ArchiveConfig()
    egress: EgressPolicy = EgressPolicy()  # exceptions to the notifier's address guard

    @property
    def all_rules(self) -> list[AnyRule]:
        """The configured rules plus, when asked for, the default pack (same name: ours win)."""
        rules = list(self.rules)
        if self.default_rules:
            own = {r.name for r in self.rules}
            rules += [r for r in DEFAULT_RULES if r.name not in own]
        return [self._with_runbook_base(r) for r in rules]

    def _with_runbook_base(self, rule: AnyRule) -> AnyRule:
        url = rule.runbook_url
        if not self.runbook_base_url or not url or "://" in url:
            return rule
        joined = self.runbook_base_url.rstrip("/") + "/" + url.lstrip("/")
        return msgspec.structs.replace(rule, runbook_url=joined)

    @property
    def muting(self) -> Muting:
        return Muting(silences=self.silences, maintenance=self.maintenance, inhibit=self.inhibit)

    def interval(self, check: AnyCheck) -> float:
        return float(check.interval if check.interval is not None else self.tiers[check.tier])

    def channel(self, name: str) -> AnyChannelConfig:
        return next(c for c in self.channels if c.name == name)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_POST_INIT = re.compile(r"([a-z_]+): (.+)", re.DOTALL)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]")


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate, validate and cross-check one configuration file."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(file, None, "", f"cannot read: {exc.strerror}") from exc
    return parse_config(text, file, os.environ if env is None else env)


def parse_config(text: str, file: str, env: Mapping[str, str]) -> Config:
    if (problem := yamlguard.check(text)) is not None:
        raise ConfigError(file, problem.line, problem.field, problem.reason)
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else {}
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column) if mark else (1, 0)
        field = yamlguard.field_at(text, line, column)
        raise ConfigError(file, line, field, f"invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow, at a position
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        field = yamlguard.field_at(text, line)
        raise ConfigError(file, line, field, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(file, 1, "$", "the document must be a mapping")
    substituted: list[str] = []  # values from the environment: errors never show them
    data = _interpolate(data, root, file, env, "", substituted)
    try:
        # strict=False: values interpolated from the environment are strings ("6379").
        config = msgspec.convert(data, Config, dec_hook=dec_hook, strict=False)
    except msgspec.ValidationError as exc:
        reason, _, where = str(exc).rpartition(" - at `")
        path = where.rstrip("`") if reason else "$"
        reason = reason or str(exc)
        if path.startswith("key` in `"):  # a mapping key of the wrong type
            path, reason = path.removeprefix("key` in `"), f"a key: {reason}"
        if named := re.match(r"Object (?:missing required|contains unknown) field `(.+)`", reason):
            path += f".{named[1]}"
        elif named := _POST_INIT.match(reason):  # a struct's own check names its field
            path, reason = f"{path}.{named[1]}", named[2]
        reason = _masked(reason, substituted)
        raise ConfigError(file, _line_of(root, path), path.removeprefix("$."), reason) from exc
    for field, reason in _cross_check(config):
        raise ConfigError(file, _line_of(root, "$." + field), field, _masked(reason, substituted))
    return config


def _masked(reason: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        reason = reason.replace(secret, "***") if len(secret) >= 4 else reason
    return reason


def _interpolate(
    value: Any,
    node: yaml.Node | None,
    file: str,
    env: Mapping[str, str],
    field: str,
    seen: list[str],
) -> Any:
    if isinstance(value, str):

        def lookup(m: re.Match[str]) -> str:
            seen.append(found := _lookup(m[1], node, file, env, field))
            return found

        return _VAR.sub(lookup, value)
    if isinstance(value, dict) and isinstance(node, yaml.MappingNode):
        children = {k.value: v for k, v in node.value}
        return {
            k: _interpolate(v, children.get(k), file, env, f"{field}.{k}", seen)
            for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(node, yaml.SequenceNode):
        return [
            _interpolate(v, n, file, env, f"{field}[{i}]", seen)
            for i, (v, n) in enumerate(zip(value, node.value, strict=False))
        ]
    return value


def _lookup(
    name: str, node: yaml.Node | None, file: str, env: Mapping[str, str], field: str
) -> str:
    line = node.start_mark.line + 1 if node is not None else None
    try:
        value = env_value(env, name)
    except SettingsError as exc:
        raise ConfigError(file, line, field.lstrip("."), str(exc)) from exc
    if value is None:
        raise ConfigError(
            file,
            line,
            field.lstrip("."),
            f"environment variable {name} (or {name}_FILE) is not set",
        )
    return value


def _line_of(root: yaml.Node | None, path: str) -> int | None:
    """The line of the deepest node that the msgspec error path reaches."""
    node = root
    for key, index, quoted in _PATH_PART.findall(path.removeprefix("$")):
        name = key or quoted
        if name and isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == name), None)
            if child is None:
                break
            node = child
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            break
    return node.start_mark.line + 1 if node is not None else None


def _cross_check(config: Config) -> list[tuple[str, str]]:
    """References between sections; returned as (field path, reason)."""
    problems: list[tuple[str, str]] = []
    tenants = {t.id for t in config.tenants}
    channels = {c.name for c in config.channels}
    seen: set[str] = set()
    for i, check in enumerate(config.checks):
        if check.tenant not in tenants:
            problems.append((f"checks[{i}].tenant", f"unknown tenant {check.tenant!r}"))
        if check.tier not in config.tiers:
            problems.append((f"checks[{i}].tier", f"unknown tier {check.tier!r}"))
        if check.key in seen:
            problems.append((f"checks[{i}].name", f"duplicate check {check.key!r}"))
        seen.add(check.key)
    for section, names in (
        ("rules", [r.name for r in config.rules]),
        ("channels", [c.name for c in config.channels]),
    ):
        for i, name in enumerate(names):
            if names.index(name) != i:
                problems.append((f"{section}[{i}].name", f"duplicate name {name!r}"))
    rules = {r.name for r in config.all_rules}
    for tenant, overrides in config.threshold_overrides.items():
        if tenant not in tenants:
            problems.append((f"threshold_overrides.{tenant}", f"unknown tenant {tenant!r}"))
        for name in overrides:
            if name not in rules:
                problems.append((f"threshold_overrides.{tenant}.{name}", f"unknown rule {name!r}"))
    for i, route in enumerate(config.routes):
        for j, name in enumerate(route.channels):
            if name not in channels:
                problems.append((f"routes[{i}].channels[{j}]", f"unknown channel {name!r}"))
    return problems
