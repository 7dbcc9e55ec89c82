"""Whatever a file holds, loading it as the inventory gives an inventory or a ConfigError whose
every problem names the file and a line (exit 3): never a traceback. Hypothesis feeds the
loader arbitrary text, arbitrary YAML documents, and the shipped examples mutated in their
data and in their text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsplane.config.loader import loads
from opsplane.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VALID = {name: (EXAMPLES / name).read_text() for name in ("minimal.yaml", "seed-platform.yaml")}
FILE = "fuzzed.yaml"
# About a hundred files per property keeps the module near twenty seconds (the mutated
# seed-platform example goes through the located parser, a quarter of a second each). A
# failure prints the file that caused it and the blob that replays it; nothing is written
# into the repository (no example database).
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None, print_blob=True)
FUZZ_EXAMPLES = settings(FUZZ, max_examples=50)


def loads_or_explains(text: str) -> None:
    """Load `text`; a refusal must be a ConfigError whose problems are each located."""
    try:
        loads(text, FILE)
    except ConfigError as exc:
        assert exc.exit_code == 3
        assert exc.problems, "a ConfigError with no problem in it"
        for problem in exc.problems:
            assert problem.file == FILE, problem
            assert problem.line is not None and problem.line >= 1, problem
            assert problem.message.strip(), problem


# --- values YAML can hold ---------------------------------------------------------------------

names = st.sampled_from(["platform", "name", "services", "databases", "caches", "checks", "type",
                         "port", "host", "interval", "timeout", "depends_on", "environments",
                         "alerting", "oncall", "channels", "incidents", "metrics", "run", "path",
                         "criticality", "defaults", "server", "status_page"]) | st.text(max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=30) | st.sampled_from(["10s", "500ms", "-1s", "1e400s", "http", "tcp",
                                                     "2026-11-24T02:00:00Z", "Europe/Berlin", "", "~"]))
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(names | st.integers(), inner, max_size=5), max_leaves=30)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@FUZZ
@given(st.text(max_size=400))
def test_any_text_loads_or_is_explained(text: str) -> None:
    loads_or_explains(text)


@FUZZ
@given(trees)
def test_any_yaml_document_loads_or_is_explained(tree: Any) -> None:
    loads_or_explains(dump(tree))


@FUZZ
@given(st.dictionaries(names, trees, max_size=6))
def test_any_top_level_mapping_loads_or_is_explained(sections: dict[str, Any]) -> None:
    loads_or_explains(dump({"platform": {"name": "shop"}, **sections}))


# --- the shipped examples, mutated --------------------------------------------------------------


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `data`."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(data: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    """`data` with the value at `path` replaced, removed, or given a new sibling."""
    if not path:
        return value if how == "replace" else data
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "remove":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    else:
        parent.append(value)
    return data


@FUZZ_EXAMPLES
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_valid_example_with_any_value_changed_loads_or_is_explained(name: str, data: st.DataObject) -> None:
    tree = yaml.safe_load(VALID[name])
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        path = data.draw(st.sampled_from(_paths(tree)), label="path")
        how = data.draw(st.sampled_from(["replace", "remove", "add"]), label="how")
        tree = _mutate(tree, path, how, data.draw(trees, label="value"))
    loads_or_explains(dump(tree))


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_valid_example_with_its_text_damaged_loads_or_is_explained(name: str, data: st.DataObject) -> None:
    lines = VALID[name].splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(lines) - 1), label="line")
        edit = data.draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "insert", "cut"]),
                         label="edit")
        if edit == "drop":
            del lines[at]
        elif edit == "repeat":
            lines.insert(at, lines[at])
        elif edit == "indent":
            lines[at] = "  " + lines[at]
        elif edit == "dedent":
            lines[at] = lines[at].lstrip()
        elif edit == "insert":
            column = data.draw(st.integers(0, len(lines[at])), label="column")
            text = data.draw(st.text(max_size=5) | st.sampled_from([":", "- ", "&a ", "*a", "!!str ",
                                                                    "<<: ", "{", "]", "'", "\t", "#"]),
                             label="text")
            lines[at] = lines[at][:column] + text + lines[at][column:]
        else:
            lines[at] = lines[at][:data.draw(st.integers(0, len(lines[at])), label="cut at")]
        if not lines:
            break
    loads_or_explains("".join(lines))
