"""A small condition language over one HTTP result, modelled on Gatus's.

    [STATUS] == 200
    [RESPONSE_TIME] < 300                (milliseconds)
    [BODY].data.id == 1                  (a path into a JSON body)
    [BODY] == pat(*"ok"*)                (a glob over the raw body)
    len([BODY].items) >= 1
    [HEADERS].content-type == pat(application/json*)
    [CERTIFICATE_EXPIRATION] > 48h       (a duration: time left on the server certificate)

Parsing is done once at config load (errors name the condition); evaluation is
pure and never raises: a path that does not resolve makes the condition false.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from shared.configbase import parse_duration

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
PLACEHOLDERS = ("STATUS", "RESPONSE_TIME", "BODY", "HEADERS", "CERTIFICATE_EXPIRATION")
_CONDITION = re.compile(r"\s*(.+?)\s*(==|!=|<=|>=|<|>)\s*(.*?)\s*")
_LEFT = re.compile(r"(len\()?\[([A-Z_]+)\]((?:\.[^.\[\]\s)]+|\[\d+\])*)(\))?")
_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()
MISSING = _MISSING  # what resolve() returns for a path that is not there


class ConditionError(ValueError):
    """A condition that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a condition can look at."""

    status: int
    response_time_ms: float
    body: bytes
    headers: dict[str, str]
    json: Any = _MISSING
    cert_seconds_left: float | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    placeholder: str
    path: str
    length: bool
    op: str
    right: str

    def evaluate(self, seen: Observation) -> tuple[bool, Any]:
        """Whether the condition holds, and the value its left side had."""
        value = self._left(seen)
        if value is _MISSING:
            return False, None
        if self.length:
            value = len(value) if isinstance(value, str | list | dict | bytes) else _MISSING
            if value is _MISSING:
                return False, None
        return _compare(value, self.op, self.right, self.placeholder), _shown(value)

    def _left(self, seen: Observation) -> Any:
        if self.placeholder == "STATUS":
            return seen.status
        if self.placeholder == "RESPONSE_TIME":
            return seen.response_time_ms
        if self.placeholder == "CERTIFICATE_EXPIRATION":
            return _MISSING if seen.cert_seconds_left is None else seen.cert_seconds_left
        if self.placeholder == "HEADERS":
            name = self.path.lstrip(".").lower()
            return seen.headers.get(name, _MISSING) if name else seen.headers
        if not self.path:
            return seen.body.decode(errors="replace")
        return resolve(seen.json, self.path)


def parse(text: str) -> Condition:
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise ConditionError(f"{text!r}: expected '<placeholder> <operator> <value>'")
    left, op, right = match.groups()
    parts = _LEFT.fullmatch(left)
    if parts is None or bool(parts[1]) != bool(parts[4]) or parts[2] not in PLACEHOLDERS:
        raise ConditionError(f"{text!r}: left side must be one of [{'], ['.join(PLACEHOLDERS)}]")
    placeholder, path = parts[2], parts[3]
    if path and placeholder not in ("BODY", "HEADERS"):
        raise ConditionError(f"{text!r}: only [BODY] and [HEADERS] take a path")
    if placeholder == "CERTIFICATE_EXPIRATION":
        try:
            right = str(float(parse_duration(right)))
        except ValueError as exc:
            raise ConditionError(f"{text!r}: {exc}") from exc
    return Condition(text, placeholder, path, bool(parts[1]), op, right)


def resolve(document: Any, path: str) -> Any:
    """Follow ``.a.b[0]`` (a leading ``$`` is allowed) into parsed JSON; missing -> sentinel."""
    node = document
    for key, index in _PATH_PART.findall(path.removeprefix("$")):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return _MISSING
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _compare(value: Any, op: str, right: str, placeholder: str) -> bool:
    if right.startswith("pat(") and right.endswith(")") and op in ("==", "!="):
        matched = fnmatch.fnmatchcase(_text(value), right[4:-1])
        return matched if op == "==" else not matched
    left_num, right_num = _number(value), _number(right)
    if left_num is not None and right_num is not None:
        return _ordered(left_num, op, right_num)
    if op in ("==", "!="):
        equal = _text(value) == right.strip('"')
        return equal if op == "==" else not equal
    return False  # ordering between non-numbers never holds


def _ordered(left: float, op: str, right: float) -> bool:
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _shown(value: Any) -> Any:
    """The left value as a result detail: short, JSON-friendly."""
    if isinstance(value, str | dict | list):
        return str(value)[:200] if not isinstance(value, int | float) else value
    return value
