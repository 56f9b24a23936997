"""Building blocks for configuration Structs: strict structs and durations."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A config section: unknown keys are errors, so typos never pass silently."""


class Seconds(float):
    """A duration in seconds, written in YAML as ``30s``, ``5m``, ``1h``, ``500ms`` or a number."""


MAX_DURATION = 100 * 365 * 86400.0  # a century: anything longer is a typo


def parse_duration(value: object) -> Seconds:
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(min(value, 2 * MAX_DURATION))  # min first: a huge int has no float
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        seconds = float(m[1]) * _UNIT_SECONDS[m[2]]
    if seconds is not None and 0 <= seconds <= MAX_DURATION:  # NaN fails both
        return Seconds(seconds)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    raise ValueError(
        f"expected a duration like 500ms, 30s, 5m or 1h (at most 100 years), got {shown}"
    )


def dec_hook(kind: type, value: Any) -> Any:
    if kind is Seconds:
        return parse_duration(value)
    raise NotImplementedError(f"no decoder for {kind!r}")


def schema_hook(kind: type) -> dict[str, Any]:
    if kind is Seconds:
        return {"type": ["string", "number"], "description": "duration: 500ms, 30s, 5m, 1h, 1d"}
    raise NotImplementedError(f"no schema for {kind!r}")
