"""A pass over a YAML text's events before it is built into objects.

It bounds what a hostile or broken file can cost: nesting depth (the YAML composer and
everything after it recurse), alias expansion ("billion laughs": a few lines that expand
to billions of nodes), and aliases to a node that contains them (an infinite structure).
It also tells the field path at a position, so that YAML's own errors, which know only a
line, can name the field too. The parser is event-based (no recursion), so this pass is
safe on any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

MAX_DEPTH = 64
MAX_NODES = 1_000_000  # after expanding aliases; a large real config has ~100k
MAX_DIGITS = 1000  # Python refuses to turn text of over 4300 digits into an int
_NUMBER = re.compile(r"[-+]?[0-9_.,:eExXoObB]+")


@dataclass(slots=True)
class Problem:
    line: int
    field: str
    reason: str


@dataclass(slots=True)
class _Frame:
    kind: str  # "map" or "seq"
    anchor: str | None
    start: int  # the node count when it opened: its size is the count at its end minus this
    key: str | None = None
    index: int = -1
    expecting_key: bool = True


@dataclass
class _Walk:
    frames: list[_Frame] = field(default_factory=list)
    anchors: dict[str, int] = field(default_factory=dict)  # anchor -> expanded size
    nodes: int = 0

    def path(self) -> str:
        parts = []
        for f in self.frames:
            if f.kind == "seq" and f.index >= 0:
                parts.append(f"[{f.index}]")
            elif f.kind == "map" and f.key is not None:
                parts.append(f".{f.key}")
        return "".join(parts).lstrip(".") or "$"

    def _begin_node(self, key: str | None) -> None:
        """Position the parent at this node: a map's key, or a sequence's next item."""
        if not self.frames:
            return
        top = self.frames[-1]
        if top.kind == "seq":
            top.index += 1
        elif top.expecting_key:
            top.key, top.expecting_key = key, False
        else:
            top.expecting_key = True  # this node is the value; the next one is a key

    def event(self, event: yaml.Event) -> str | None:
        """Account for one event; returns the reason if the document is refused."""
        if isinstance(event, yaml.ScalarEvent):
            self._begin_node(event.value)
            self.nodes += 1
            if event.anchor:
                self.anchors[event.anchor] = 1
            plain = event.style is None and event.implicit[0]
            if plain and len(event.value) > MAX_DIGITS and _NUMBER.fullmatch(event.value):
                return f"a number of more than {MAX_DIGITS} digits"
        elif isinstance(event, yaml.AliasEvent):
            self._begin_node("?")
            if any(f.anchor == event.anchor for f in self.frames):
                return f"alias *{event.anchor} refers to a node that contains it"
            self.nodes += self.anchors.get(event.anchor or "", 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            self._begin_node("?")
            self.nodes += 1
            kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
            self.frames.append(_Frame(kind, event.anchor, self.nodes))
            if len(self.frames) > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self.frames.pop()
            if done.anchor:
                self.anchors[done.anchor] = self.nodes - done.start + 1
        if self.nodes > MAX_NODES:
            return f"more than {MAX_NODES} nodes once aliases are expanded"
        return None


def check(text: str) -> Problem | None:
    """The first reason to refuse the text before building it, if any. YAML syntax errors
    are left to the loader (which reports them, with ``field_at`` for the field)."""
    walk = _Walk()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if (reason := walk.event(event)) is not None:
                line = event.start_mark.line + 1 if event.start_mark else 1
                return Problem(line, walk.path(), reason)
    except yaml.YAMLError:
        return None
    return None


def field_at(text: str, line: int, column: int = 0) -> str:
    """The field path of the node at (or just before) a position (1-based line, 0-based
    column), or of where the YAML stops being readable before it."""
    walk = _Walk()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            if mark is not None and (mark.line + 1, mark.column) > (line, column):
                break
            walk.event(event)
    except yaml.YAMLError:
        pass
    return walk.path()
