"""Fuzzed configurations: whatever the text, the loader returns a Config or raises a
ConfigError naming the file, a line of the text and a field, never anything else."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.config import parse_config
from shared.errors import ConfigError
from shared.yamlguard import MAX_DEPTH
from tests.test_config import DEMO_CONFIG, DEMO_ENV

FILE = "fuzz.yaml"
BASE: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([10**300, -(10**300), 2**63, -(2**63) - 1]),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["30s", "5m", "soon", "-1s", "9" * 400 + "h", "${NOPE}", "${", "http://x"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just("x" * 100_000),
)


def paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in the document: keys of mappings, indexes of lists."""
    found = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            found += paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += paths(v, (*here, i))
    return found


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The demo config with 1-4 structural mutations, dumped back to YAML."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "unknown", "nest", "duplicate"]))
        if not path:  # the root itself
            if op == "replace":
                doc = draw(VALUES)
            continue
        parent, last = get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(VALUES)
        elif op == "delete":
            del parent[last]
        elif op == "unknown" and isinstance(parent[last], dict):
            parent[last][draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
        elif op == "nest":
            depth = draw(st.integers(1, 3 * MAX_DEPTH))
            for _ in range(depth):
                parent[last] = draw(st.sampled_from([[parent[last]], {"a": parent[last]}]))
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        if not isinstance(doc, dict | list):
            break
    return yaml.safe_dump(doc, sort_keys=False, width=10_000)


def assert_names_file_line_and_field(error: ConfigError, text: str) -> None:
    assert error.file == FILE
    assert error.line is not None and 1 <= error.line <= text.count("\n") + 1, error
    assert error.field and "` in `" not in error.field, error
    assert error.reason, error
    assert str(error).startswith(f"{FILE}:{error.line}: {error.field}: ")


def assert_loads_or_names_the_problem(text: str) -> None:
    started = time.perf_counter()
    try:
        parse_config(text, FILE, DEMO_ENV)
        event("loaded")
    except ConfigError as error:
        assert_names_file_line_and_field(error, text)
        event("refused: " + error.reason.split(":")[0][:40])
    assert time.perf_counter() - started < 5, "a config took more than 5 s to refuse"


@FUZZ
@given(mutated())
def test_structurally_mutated_configs(text: str) -> None:
    assert_loads_or_names_the_problem(text)


@FUZZ
@given(st.data())
def test_textually_mutated_configs(data: st.DataObject) -> None:
    text = DEMO_CONFIG.read_text()
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 20))
    inserted = data.draw(
        st.text(max_size=12)
        | st.sampled_from(
            [
                "\t",
                ": ",
                "- ",
                "&a ",
                "*a",
                "*nope",
                "!!python/object:os.system ",
                "<<: *a\n",
                "{",
                "[",
                "'",
                '"\\',
                "\x00",
                "\ufeff",
                "? ",
            ]
        )
    )
    assert_loads_or_names_the_problem(text[:at] + inserted + text[at + cut :])


ANCHORS = {
    "undefined alias": "checks: *nothing\n",
    "alias to its own container": "tenants: &t\n  - id: acme\n  - *t\n",
    "recursive mapping": "archive: &a {x: *a}\n",
    "anchor redefined": "tenants: &t [{id: a}]\nrules: &t []\nchannels: *t\n",
    "merge of a list": "tenants:\n  - &base {id: a}\n  - <<: [*base, 1]\n",
    "merge of a scalar": "tenants:\n  - <<: 3\n    id: x\n",
    "alias as a key": "tenants: &k [1]\n? *k\n: 2\n",
    "billion laughs": "".join(
        f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" if i else "x0: &l0 [lol]\n"
        for i in range(10)
    )
    + "tenants: *l9\n",
    "deep flow nesting": "tenants: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "deep block nesting": "tenants:\n" + "".join("  " * i + "- \n" for i in range(1, 500)),
    "huge integer": "archive:\n  raw_days: " + "9" * 5000 + "\n",
    "huge float": "tiers:\n  core: 1e999\n",
    "nan duration": "tiers:\n  core: .nan\n",
    "binary tag": "tenants: !!binary aGVsbG8=\n",
    "python tag": "tenants: !!python/object/apply:os.system ['true']\n",
    "timestamp key": "threshold_overrides:\n  2026-01-01: {}\n",
    "two documents": "tenants: []\n---\ntenants: []\n",
    "null key": "null: 1\n",
    "integer key": "tenants:\n  - {id: a, 1: 2}\n",
}


@pytest.mark.parametrize("text", ANCHORS.values(), ids=ANCHORS.keys())
def test_hostile_yaml_is_refused_with_file_line_and_field(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, DEMO_ENV)
    assert_names_file_line_and_field(caught.value, text)
    assert time.perf_counter() - started < 5
