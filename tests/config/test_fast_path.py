"""The fast path (libyaml events, no positions) reads exactly what the located parser reads,
and hands everything else to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opsplane.config.loader import _fast_load, loads
from opsplane.config.yamlsource import NotPlain, load_plain, parse

EXAMPLES = sorted(Path(__file__).parents[2].joinpath("examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_read_the_same_on_both_paths(path: Path) -> None:
    text = path.read_text()
    assert load_plain(text) == parse(text, str(path)).data == yaml.safe_load(text)
    fast = _fast_load(text)
    assert fast is not None and fast == loads(text, str(path))


@pytest.mark.parametrize("text", [
    "a: 1\nb: [x, 2.5, true, null, '3', 2026-01-01]\nc: {d: e}\n",
    "- plain\n- 'quoted'\n- |\n  block\n  text\n",
    "",
])
def test_plain_documents_match_safe_load(text: str) -> None:
    assert load_plain(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",                 # duplicate key
    "a: &x 1\nb: *x\n",            # anchor and alias
    "base: {a: 1}\nc:\n  <<: {a: 1}\n",  # merge key
    "x: !!str 5\n",                # explicit tag
    "1: one\n",                    # non-text key
    "a: 1\n---\nb: 2\n",           # several documents
])
def test_anything_special_is_left_to_the_located_parser(text: str) -> None:
    with pytest.raises((NotPlain, yaml.YAMLError)):
        load_plain(text)
