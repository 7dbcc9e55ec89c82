"""YAML parsing that remembers where every value came from.

PyYAML builds plain Python values and forgets positions; the inventory's errors must name
file, line and column. We compose the node tree ourselves and record, for every path of
keys and indexes, the position of the value (and of the key, for mappings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from opsplane.errors import ConfigError, ConfigProblem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class LocatedDocument:
    """A parsed YAML document with the position of every value and mapping key."""

    file: str
    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def locate(self, path: Path) -> Position | None:
        """Position of the value at `path`, or of the deepest existing prefix (a missing field
        points at its parent mapping)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.values:
                return self.values[prefix]
        return None

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> ConfigProblem:
        """A ConfigProblem located at the value of `path` (or at its key when `at_key`)."""
        pos = self.keys.get(path) if at_key else None
        pos = pos or self.locate(path)
        return ConfigProblem(
            file=self.file,
            line=pos.line if pos else None,
            column=pos.column if pos else None,
            field=dotted(path),
            message=message,
        )


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _position(node: yaml.Node) -> Position:
    return Position(line=node.start_mark.line + 1, column=node.start_mark.column + 1)


def parse(text: str, file: str) -> LocatedDocument:
    """Parse YAML text; raises ConfigError with the position of a syntax error or duplicate key."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            [
                ConfigProblem(
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    field="",
                    message=_syntax_message(exc),
                )
            ]
        ) from None
    doc = LocatedDocument(file=file, data=None)
    if root is None:
        doc.data = {}
        doc.values[()] = Position(line=1, column=1)  # so "platform is missing" has a place
        return doc
    problems: list[ConfigProblem] = []
    doc.data = _build(root, (), doc, problems)
    if problems:
        raise ConfigError(problems)
    return doc


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with where the construct it was reading began and the usual cause."""
    message = f"invalid YAML: {exc.problem}"
    if exc.context and exc.context_mark:
        mark = exc.context_mark
        message += f" {exc.context} that starts at line {mark.line + 1}, column {mark.column + 1}"
    problem = exc.problem or ""
    if "'\\t'" in problem:  # PyYAML writes the tab escaped
        message += "; indent with spaces, YAML does not allow tabs"
    elif "<block end>" in problem:
        message += "; check the indentation"
    elif "mapping values are not allowed" in problem:
        message += "; check the indentation, or quote a value that contains ': '"
    return message


def _build(node: yaml.Node, path: Path, doc: LocatedDocument, problems: list[ConfigProblem]) -> Any:
    doc.values[path] = _position(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    ConfigProblem(doc.file, *_pos_tuple(key_node), dotted(path),
                                  "YAML merge keys (<<) are not supported; write the fields out")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    ConfigProblem(doc.file, *_pos_tuple(key_node), dotted(path),
                                  "mapping keys must be plain names")
                )
                continue
            key = str(_scalar(key_node))
            child = path + (key,)
            if key in result:
                first = doc.keys[child]
                problems.append(
                    ConfigProblem(doc.file, *_pos_tuple(key_node), dotted(child),
                                  f"duplicate key (first defined at line {first.line})")
                )
                continue
            doc.keys[child] = _position(key_node)
            result[key] = _build(value_node, child, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, problems) for i, item in enumerate(node.value)]
    return _scalar(node)


def _pos_tuple(node: yaml.Node) -> tuple[int, int]:
    pos = _position(node)
    return pos.line, pos.column


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise TypeError("expected a scalar node")
    try:
        return _constructor.construct_object(node, deep=True)
    finally:
        # The constructor memoises every node it builds; keeping them would hold the whole
        # node tree (and its marks) alive for as long as the process runs.
        _constructor.constructed_objects.clear()
