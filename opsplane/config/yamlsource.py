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
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, before any parsing
        line, column = _line_column(text, exc.position)
        raise ConfigError([ConfigProblem(
            file=file, line=line, column=column, field="",
            message=f"invalid YAML: character U+{exc.character:04X} is not allowed "
                    "(control characters other than tab and newline)")]) from None
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


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of the character at `offset` in `text`."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


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
            key_value = _read_scalar(key_node, path, doc, problems)
            if key_value is _UNREADABLE:
                continue
            key = str(key_value)
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
    value = _read_scalar(node, path, doc, problems)
    return None if value is _UNREADABLE else value


_UNREADABLE = object()


def _read_scalar(node: yaml.Node, path: Path, doc: LocatedDocument, problems: list[ConfigProblem]) -> Any:
    """The scalar's value; _UNREADABLE, with a problem located at it, when YAML cannot build
    it (an unknown tag, a date such as 2026-13-01, a malformed !!binary)."""
    try:
        return _scalar(node)
    except yaml.constructor.ConstructorError as exc:
        if node.tag == "tag:yaml.org,2002:value":  # a bare '=', which YAML 1.1 reserves: text
            return node.value
        reason = exc.problem or "cannot be read"
    except (ValueError, OverflowError) as exc:
        reason = str(exc)
    problems.append(ConfigProblem(doc.file, *_pos_tuple(node), dotted(path),
                                  f"cannot read {str(node.value)[:40]!r}: {reason}"))
    return _UNREADABLE


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


class NotPlain(ValueError):
    """The YAML uses something beyond plain mappings, lists and scalars."""


_NO_KEY = object()
_PLAIN_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def load_plain(text: str) -> Any:
    """Plain data straight from libyaml's events, without building a node tree: a tenth of
    the memory and a fifth of the time of `parse`, but no positions. Raises NotPlain (or a
    YAMLError) on anything `parse` would treat specially or refuse: anchors, aliases, explicit
    tags, merge keys, duplicate or non-text keys, several documents."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    stack: list[Any] = []
    keys: list[Any] = []
    result: Any = None

    def add(value: Any) -> None:
        nonlocal result
        if not stack:
            result = value
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        elif keys[-1] is _NO_KEY:
            if not isinstance(value, str) or value in stack[-1]:
                raise NotPlain("duplicate or non-text key")
            keys[-1] = value
        else:
            stack[-1][keys[-1]] = value
            keys[-1] = _NO_KEY

    try:
        while True:
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise NotPlain("anchors and aliases")
            if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent) and \
                    event.tag not in _PLAIN_TAGS:
                raise NotPlain("explicit tag")
            if isinstance(event, yaml.ScalarEvent):
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, style=event.style)
                add(loader.construct_object(node))  # merge keys raise ConstructorError here
                loader.constructed_objects.clear()
            elif isinstance(event, yaml.MappingStartEvent):
                stack.append({})
                keys.append(_NO_KEY)
            elif isinstance(event, yaml.SequenceStartEvent):
                stack.append([])
                keys.append(_NO_KEY)
            elif isinstance(event, yaml.CollectionEndEvent):
                keys.pop()
                add(stack.pop())
            elif isinstance(event, yaml.DocumentStartEvent) and result is not None:
                raise NotPlain("several documents")
            elif isinstance(event, yaml.StreamEndEvent):
                return result
    finally:
        loader.dispose()
