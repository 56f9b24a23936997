"""Export the wire Structs as JSON Schema files beside this module."""

from __future__ import annotations

from pathlib import Path

import msgspec

from schemas.messages import SCHEMA_VERSION, WIRE_TYPES

SCHEMA_DIR = Path(__file__).resolve().parent


def rendered() -> dict[str, bytes]:
    """File name -> JSON Schema bytes, as ``vigil schema export`` writes them."""
    out: dict[str, bytes] = {}
    for name, struct in WIRE_TYPES.items():
        schema = msgspec.json.schema(struct)
        schema["$id"] = f"https://vigil.dev/schemas/{name}.v{SCHEMA_VERSION}.json"
        schema["title"] = struct.__name__
        out[f"{name}.v{SCHEMA_VERSION}.json"] = (
            msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
        )
    return out


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    written = []
    for file_name, body in rendered().items():
        path = directory / file_name
        path.write_bytes(body)
        written.append(path)
    return written


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the Structs."""
    return [
        name
        for name, body in rendered().items()
        if not (directory / name).exists() or (directory / name).read_bytes() != body
    ]
