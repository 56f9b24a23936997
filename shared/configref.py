"""A Markdown reference of every configuration section and key, generated from the
configuration's JSON Schema (itself generated from the Structs), checked in as
``docs/config-reference.md`` so it cannot drift from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.configschema import schema

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"
_DURATION = ["string", "number"]
_HEADER = """\
# Configuration reference (generated)

Every section and key of the YAML configuration, generated from the code by
`vigil config reference` (do not edit: `make lint` fails when this file is stale). The
guide, with examples and the meaning of each section, is
[configuration.md](configuration.md); the same facts for editors are in
[config.schema.json](config.schema.json).

Types: a *duration* is written `500ms`, `30s`, `5m`, `1h`, `1d` or as seconds; *optional*
keys may be left out or set to `null`. Unknown keys are errors.
"""


def _anchor(name: str) -> str:
    return f"[{name}](#{name.lower()})"


def _describe(node: dict[str, Any]) -> str:
    """A field's type in words, with links to the sections of nested structs."""
    if "$ref" in node:
        return _anchor(node["$ref"].rsplit("/", 1)[1])
    if "anyOf" in node:
        kinds = [k for k in node["anyOf"] if k.get("type") != "null"]
        text = " or ".join(_describe(k) for k in kinds)
        if "discriminator" in node:
            text = "one of " + ", ".join(_describe(k) for k in kinds)
        return text + (", optional" if len(kinds) < len(node["anyOf"]) else "")
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type")
    if kind == _DURATION:
        return "duration"
    if kind == "array":
        return f"list of {_describe(node.get('items', {}))}"
    if kind == "object":
        return f"map of string to {_describe(node.get('additionalProperties', {}))}"
    text = " or ".join(kind) if isinstance(kind, list) else str(kind or "any")
    limits = [
        f"{word} {node[key]}"
        for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"))
        if key in node
    ]
    if "pattern" in node:
        limits.append(f"matching `{node['pattern']}`")
    return text + (f" ({', '.join(limits)})" if limits else "")


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in node:
        return ""
    if node.get("type") == _DURATION and isinstance(node["default"], int | float):
        return f"`{node['default']:g}s`"
    text = json.dumps(node["default"], ensure_ascii=False)
    return f"`{text}`".replace("|", "\\|")


def _section(name: str, node: dict[str, Any], tag: str | None) -> list[str]:
    lines = [f"## {name}", ""]
    if tag:
        lines += [f"Selected with `type: {tag}`.", ""]
    if description := node.get("description"):
        lines += [" ".join(description.split()), ""]
    lines += ["| key | type | default |", "|---|---|---|"]
    required = set(node.get("required", []))
    for key, field in node.get("properties", {}).items():
        if key == "type" and tag:
            continue
        lines.append(f"| `{key}` | {_describe(field)} | {_default(field, key in required)} |")
    return [*lines, ""]


def _order(defs: dict[str, Any], root: str) -> list[str]:
    """Struct names depth-first from the root, in the order their fields mention them."""
    seen: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.append(name)
        for ref in _refs(defs[name]):
            visit(ref)

    visit(root)
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        return own + [r for k, v in node.items() if k != "discriminator" for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def rendered() -> str:
    """The reference's text, as ``vigil config reference`` writes it."""
    full = schema()
    defs: dict[str, Any] = full["$defs"]
    root = full["$ref"].rsplit("/", 1)[1]
    lines = [_HEADER]
    for name in _order(defs, root):
        node = defs[name]
        tag = node.get("properties", {}).get("type", {}).get("enum", [None])
        lines += _section(name, node, tag[0] if len(tag) == 1 else None)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(path: Path = REFERENCE_FILE) -> Path:
    path.write_text(rendered())
    return path


def drifted(path: Path = REFERENCE_FILE) -> bool:
    """Whether the checked-in reference is missing or differs from the Structs."""
    return not path.exists() or path.read_text() != rendered()
