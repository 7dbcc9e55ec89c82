"""Finding and loading runbooks: parse each file with positions, validate, cross-check it
against the inventory, and report every problem with file, line and field.

Runbooks come from two places: those opsplane ships (`builtin/`, the manuals' runbooks) and the
inventory's `runbooks.dir`. A file in the inventory's directory replaces a shipped runbook of the
same name. A shipped runbook's defaults are the reference shop's names (orders, postgres-main,
redis); in an inventory without such a component the default is dropped and the parameter must
be given, rather than the runbook refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsplane.config.models import Inventory, check_name
from opsplane.config.yamlsource import LocatedDocument, parse
from opsplane.errors import ConfigError, ConfigProblem
from opsplane.runbooks.models import (
    ACTION_TARGETS,
    CONTINUE,
    END,
    RESERVED,
    STEP_KINDS,
    Runbook,
    parameters_used,
)

BUILTIN_DIR = Path(__file__).parent / "builtin"
Problem = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class LoadedRunbook:
    """A valid runbook and where it came from: its file and the line of each step."""

    runbook: Runbook
    file: str
    lines: dict[str, int] = field(default_factory=dict)
    builtin: bool = False

    @property
    def name(self) -> str:
        return self.runbook.name


def runbooks_dir(inventory: Inventory, base_dir: Path) -> Path | None:
    """The inventory's runbooks directory (relative paths from the inventory's directory)."""
    configured = inventory.runbooks.dir
    return None if configured is None else (base_dir / configured)


def catalog(inventory: Inventory, base_dir: Path) -> dict[str, LoadedRunbook]:
    """Every runbook by name, shipped ones first, the inventory's over them; ConfigError
    listing every problem of every file."""
    found: dict[str, LoadedRunbook] = {}
    if BUILTIN_DIR.is_dir():
        found.update({r.name: r for r in load_dir(BUILTIN_DIR, inventory, builtin=True)})
    directory = runbooks_dir(inventory, base_dir)
    if directory is not None:
        if not directory.is_dir():
            raise ConfigError([ConfigProblem(str(directory), None, None, "runbooks.dir",
                                             "no such directory (runbooks.dir in the inventory)")])
        found.update({r.name: r for r in load_dir(directory, inventory)})
    return dict(sorted(found.items()))


def load_dir(directory: Path, inventory: Inventory, *, builtin: bool = False) -> list[LoadedRunbook]:
    """The runbooks in `directory` (*.yaml, *.yml), by file name; ConfigError with every problem."""
    loaded: list[LoadedRunbook] = []
    problems: list[ConfigProblem] = []
    names: dict[str, str] = {}
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in files:
        try:
            runbook = load_file(path, inventory, builtin=builtin)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if runbook.name in names:
            doc = parse(path.read_text(), str(path))
            problems.append(doc.problem(("name",), f"runbook {runbook.name!r} is already defined in "
                                                   f"{names[runbook.name]}"))
            continue
        names[runbook.name] = str(path)
        loaded.append(runbook)
    if problems:
        raise ConfigError(problems)
    return loaded


def load_file(path: Path, inventory: Inventory, *, builtin: bool = False) -> LoadedRunbook:
    """The runbook in `path`, checked against `inventory`; ConfigError listing every problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, None, "",
                                         f"cannot read file: {exc.strerror}")]) from None
    return loads(text, str(path), inventory, builtin=builtin)


def loads(text: str, file: str, inventory: Inventory, *, builtin: bool = False) -> LoadedRunbook:
    """The runbook in `text`; ConfigError with file, line and field of every problem."""
    doc = parse(text, file)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping: name, title, steps")])
    try:
        runbook = Runbook.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_translate(exc, doc)) from None
    if builtin:
        runbook = _without_missing_defaults(runbook, inventory)
    problems = [doc.problem(path, message) for path, message in cross_check(runbook, inventory)]
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if problems:
        raise ConfigError(problems)
    lines = {}
    for index, step in enumerate(runbook.steps):
        position = doc.locate(("steps", index))
        lines[step.id] = position.line if position else 0
    return LoadedRunbook(runbook, file, lines, builtin)


def _without_missing_defaults(runbook: Runbook, inventory: Inventory) -> Runbook:
    """`runbook` whose defaults that name no component of `inventory` are unset (required)."""
    kept = {name: parameter if parameter.of == "text" or parameter.default is None
            or _component_problem(parameter.of, parameter.default, inventory) is None
            else parameter.model_copy(update={"default": None})
            for name, parameter in runbook.parameters.items()}
    return runbook.model_copy(update={"parameters": kept})


def cross_check(runbook: Runbook, inventory: Inventory) -> list[Problem]:
    """What spans fields and files: duplicate ids, where steps lead, the inventory's
    components and checks, parameters, cycles. Pure."""
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(runbook.steps):
        if step.id in RESERVED:
            problems.append((("steps", index, "id"), f"{step.id!r} is reserved (it means where a run ends); "
                                                      "give the step another id"))
        elif step.id in ids:
            problems.append((("steps", index, "id"),
                             f"duplicate step id {step.id!r} (first used by steps[{ids[step.id]}])"))
        else:
            ids[step.id] = index
    for index, step in enumerate(runbook.steps):
        at = ("steps", index)
        for name, target, allowed in _leads(step):
            if target not in ids and target not in allowed:
                problems.append(((*at, *name), f"unknown step {target!r}; expected a step id or "
                                               f"{', '.join(allowed)}{_suggest(target, ids)}"))
        if step.kind == "decide":
            if step.step not in ids:
                problems.append(((*at, "step"), f"unknown step {step.step!r}{_suggest(step.step, ids)}"))
            elif step.step == step.id:
                problems.append(((*at, "step"), "a decision cannot decide on its own outcome"))
        problems.extend(((*at, *path), message) for path, message in _inventory_problems(step, inventory))
        for used in sorted(parameters_used(step.model_dump())):
            if used not in runbook.parameters:
                problems.append((at, f"${{{used}}} names no parameter; declare it under parameters"))
    for param, parameter in runbook.parameters.items():
        if parameter.of != "text" and parameter.default is not None:
            missing = _component_problem(parameter.of, parameter.default, inventory)
            if missing:
                problems.append((("parameters", param, "default"), missing))
    if not any(message.startswith(("duplicate", "unknown step")) for _, message in problems):
        problems.extend(_cycles(runbook))
    return problems


def _leads(step: Any) -> Iterable[tuple[tuple[str, ...], str, tuple[str, ...]]]:
    """(field path, target, the reserved words allowed there) of every way out of `step`."""
    ends = ("end", "fail", "abort")
    if step.next is not None:
        yield ("next",), step.next, ends
    if step.kind == "decide":
        for outcome, target in step.when.items():
            yield ("when", outcome), target, ends
        if step.otherwise is not None:
            yield ("otherwise",), step.otherwise, ends
    for name in ("if_failed", "if_no"):
        target = getattr(step, name, None)
        if target is not None:
            yield (name,), target, (*ends, CONTINUE)


def _inventory_problems(step: Any, inventory: Inventory) -> list[tuple[tuple[str, ...], str]]:
    problems: list[tuple[tuple[str, ...], str]] = []
    check = getattr(step, "check", None) if step.kind in ("check", "wait_until") else None
    if check is not None and "${" not in check:
        found = check_problem(check, inventory)
        if found:
            problems.append((("check",), found))
    promql = getattr(step, "promql", None)
    if promql and "${" not in promql and inventory.metrics.source == "builtin":
        from opsplane.errors import OpsplaneError
        from opsplane.metrics.promql import parse as parse_promql

        try:
            parse_promql(promql)
        except (ValueError, OpsplaneError) as exc:
            problems.append((("promql",), str(exc)))
    if step.kind == "action" and step.target and "${" not in step.target:
        of = ACTION_TARGETS.get(step.action)
        if of:
            found = _component_problem(of, step.target, inventory)
            if found:
                problems.append((("target",), f"{step.action}: {found}"))
    return problems


def rule_problems(inventory: Inventory, names: Iterable[str]) -> list[Problem]:
    """The inventory's alert rules whose `runbook` names a runbook not among `names`. Pure."""
    from opsplane.runbooks.models import named_runbook

    known = list(names)
    problems: list[Problem] = []
    for index, rule in enumerate(inventory.alerting.rules):
        name = named_runbook(rule.runbook)
        if name is not None and name not in known:
            problems.append((("alerting", "rules", index, "runbook"),
                             f"no runbook {name!r}{_suggest(name, known)}; a runbook's name (`opsplane "
                             "runbook list`), or a link with '/', ':', '#' or '.' in it"))
    return problems


def check_problem(reference: str, inventory: Inventory) -> str | None:
    """What is wrong with a COMPONENT/CHECK reference (or a bare COMPONENT: all its checks), or None."""
    component, slash, name = reference.partition("/")
    known = {n: c for _, n, c in inventory.components()}
    if slash and not name:
        return f"expected COMPONENT/CHECK, such as catalog/http, or COMPONENT; got {reference!r}"
    if component not in known:
        return f"unknown component {component!r}{_suggest(component, known)}"
    if not name:
        return None if known[component].checks else f"{component} has no checks"
    checks = [check_name(c) for c in known[component].checks]
    if name not in checks:
        return (f"{component} has no check {name!r}; its checks: {', '.join(checks) or 'none'}"
                f"{_suggest(name, checks)}")
    return None


def _component_problem(of: str, name: str, inventory: Inventory) -> str | None:
    """What is wrong with naming `name` as a service, database, cache or any component."""
    if of == "component":
        known = [n for _, n, _ in inventory.components()]
    else:
        known = list(getattr(inventory, "caches" if of == "cache" else f"{of}s"))
    if name in known:
        return None
    return f"unknown {of} {name!r}; the inventory's: {', '.join(known) or 'none'}{_suggest(name, known)}"


def component_problem(of: str, name: str, inventory: Inventory) -> str | None:
    """Public form of the component check, for parameters given when a run starts."""
    return None if of == "text" else _component_problem(of, name, inventory)


def _cycles(runbook: Runbook) -> list[Problem]:
    """A path of steps that comes back to a step it passed (a wait_until's own looks are no
    cycle: they are attempts of one step). Iterative depth-first walk."""
    index = {s.id: i for i, s in enumerate(runbook.steps)}
    graph: dict[str, list[str]] = {}
    for step in runbook.steps:
        outs = [runbook.successor(step)] if step.kind != "decide" else []
        outs += [target for _, target, _ in _leads(step) if target == CONTINUE or target in index]
        graph[step.id] = [runbook.successor(step) if t == CONTINUE else t for t in outs]
    state: dict[str, int] = {}
    for root in graph:
        if root in state:
            continue
        trail, pending = [root], [iter(graph[root])]
        state[root] = 1
        while trail:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[trail.pop()] = 2
                pending.pop()
            elif nxt not in graph:
                continue
            elif state.get(nxt) == 1:
                loop = trail[trail.index(nxt):] + [nxt]
                return [(("steps", index[trail[-1]]), "the steps go round in a cycle: " + " -> ".join(loop)
                         + "; a runbook runs each step once (wait_until looks again by itself)")]
            elif nxt not in state:
                state[nxt] = 1
                trail.append(nxt)
                pending.append(iter(graph[nxt]))
    return []


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _translate(exc: ValidationError, doc: LocatedDocument) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for error in exc.errors(include_url=False):
        loc = _clean(error["loc"])
        kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
        at_key = kind == "extra_forbidden"
        if kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif kind == "union_tag_invalid":
            loc = (*loc, "kind")
            tag = str(ctx.get("tag"))
            message = (f"unknown step kind {tag!r}; expected one of {', '.join(STEP_KINDS)}"
                       f"{_suggest(tag, STEP_KINDS)}")
        elif kind == "union_tag_not_found":
            message = f"a step needs a 'kind': one of {', '.join(STEP_KINDS)}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "literal_error":
            message = f"expected {ctx.get('expected')}, got {value!r}"
        elif kind == "value_error":
            message = str(ctx.get("error", error["msg"]))
        elif kind == "string_pattern_mismatch":
            message = (f"invalid name {value!r}: use lowercase letters, digits, '-', '_' and '.', starting "
                       "with a letter or digit")
        elif kind == "too_short":
            message = "expected at least one item"
        else:
            message = error["msg"]
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        problems.append(doc.problem(loc, message, at_key=at_key))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return problems


def _clean(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's location without the union tag after a step's index or validator names."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[0] == "steps" and isinstance(loc[i - 1], int) and i == 2 and part in STEP_KINDS:
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
    if out and out[0] == "for_":
        out[0] = "for"
    return tuple(out)


__all__ = ["BUILTIN_DIR", "END", "LoadedRunbook", "catalog", "check_problem", "component_problem",
           "cross_check", "load_dir", "load_file", "loads", "rule_problems", "runbooks_dir"]
