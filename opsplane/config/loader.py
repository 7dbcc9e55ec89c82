"""Loading `opsplane.yaml`: parse, validate, cross-check, and report every problem at once."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from opsplane.backup.failover_plan import failover_problems
from opsplane.backup.policy import backup_problems
from opsplane.capacity.models import capacity_problems
from opsplane.config.models import CHECK_MODELS, CHECK_TYPES, SECTIONS, Inventory, check_name
from opsplane.config.yamlsource import LocatedDocument, NotPlain, load_plain, parse
from opsplane.errors import ConfigError, ConfigProblem
from opsplane.gameday.catalog import gameday_problems
from opsplane.notify.models import CHANNEL_TYPES
from opsplane.oncall.checks import oncall_problems, oncall_warnings
from opsplane.reports.jobs import job_problems
from opsplane.runbooks.auto import auto_problems
from opsplane.security.config_secrets import secret_problems
from opsplane.slo.checks import slo_problems

DEFAULT_PATH = "opsplane.yaml"


def default_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("OPSPLANE_CONFIG", DEFAULT_PATH))


def load(path: str | Path) -> Inventory:
    """The validated inventory in `path`; raises ConfigError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InventoryNotFound(path) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, None, "", f"cannot read file: {exc.strerror}")]
        ) from None
    return loads(text, str(path))


def load_with_warnings(path: str | Path) -> tuple[Inventory, list[ConfigProblem]]:
    """The validated inventory in `path` and, located like problems, what it says that is
    valid but will not do what it seems to; raises ConfigError as `load` does."""
    path = Path(path)
    inventory = load(path)
    found = oncall_warnings(inventory.oncall, channels=inventory.channels.named)
    if not found:
        return inventory, []
    doc = parse(path.read_text(), str(path))
    return inventory, [doc.problem(at, message) for at, message in found]


class InventoryNotFound(ConfigError):
    """There is no inventory file where opsplane looked."""

    def __init__(self, path: Path) -> None:
        directory = path.absolute().parent
        super().__init__([ConfigProblem(str(path), None, None, "", f"no such file in {directory}")])
        # One sentence instead of a list of one problem: where it looked, how to point elsewhere.
        self.args = (
            f"no {path.name} in {directory}: run opsplane in the directory that holds the "
            "inventory, or name the file with -c/--config PATH or OPSPLANE_CONFIG=PATH",
        )


def loads(text: str, file: str = DEFAULT_PATH) -> Inventory:
    """The validated inventory in `text`; raises ConfigError listing every problem found.

    A valid file takes the fast path (libyaml, no positions kept); any problem sends the
    file through the located parser, which is slower but says where each problem is.
    """
    inventory = _fast_load(text)
    if inventory is not None:
        return inventory
    doc = parse(text, file)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping at the top of the file")])
    try:
        inventory = Inventory.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_translate(exc, doc)) from None
    problems = [
        doc.problem(path, message, at_key=_ends_at_a_name(path))
        for path, message in cross_check(inventory)
    ]
    if problems:
        raise ConfigError(problems)
    return inventory


def _ends_at_a_name(path: tuple[str | int, ...]) -> bool:
    """Whether `path` ends at a name the user chose (a component or an environment override),
    whose key, not its value, is what a cross-check problem is about."""
    component = len(path) == 2 and path[0] in SECTIONS
    return component or (len(path) == 4 and path[2] == "environments")


def _fast_load(text: str) -> Inventory | None:
    """The inventory when `text` is valid in every respect, else None (never raises)."""
    try:
        data = load_plain(text)
    except (yaml.YAMLError, NotPlain, ValueError, OverflowError):  # ValueError: 2026-13-01
        return None
    if not isinstance(data, dict):
        return None
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError:
        return None
    return None if cross_check(inventory) else inventory


def cross_check(inv: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems that span fields: unknown references, duplicates, cycles. Pure."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    owner: dict[str, str] = {}
    for section, name, _ in inv.components():
        if name in owner:
            problems.append(
                ((section, name),
                 f"name {name!r} is already used by {owner[name]}.{name}; a name must be unique "
                 f"across {', '.join(SECTIONS[:-1])} and {SECTIONS[-1]}")
            )
        else:
            owner[name] = section
    if inv.platform.default_environment not in inv.environments:
        problems.append(
            (("platform", "default_environment"),
             f"unknown environment {inv.platform.default_environment!r}; "
             f"expected one of {_names(inv.environments)}")
        )
    for section, name, component in inv.components():
        for i, dep in enumerate(component.depends_on):
            if dep == name:
                problems.append(
                    ((section, name, "depends_on", i), "a component cannot depend on itself")
                )
            elif dep not in owner:
                problems.append(
                    ((section, name, "depends_on", i),
                     f"unknown component {dep!r}{_suggest(dep, owner)}")
                )
        if component.proxy is not None:
            if component.proxy not in inv.proxies:
                problems.append(
                    ((section, name, "proxy"),
                     f"unknown proxy {component.proxy!r}; expected one of {_names(inv.proxies)}")
                )
            elif component.port is None:
                problems.append(
                    ((section, name, "port"),
                     f"a component behind proxy {component.proxy!r} needs a port: the proxy listens there")
                )
        for env in component.environments:
            if env not in inv.environments:
                problems.append(
                    ((section, name, "environments", env),
                     f"unknown environment {env!r}; expected one of {_names(inv.environments)}")
                )
        seen: dict[str, int] = {}
        for i, check in enumerate(component.checks):
            cname = check_name(check)
            if cname in seen:
                problems.append(
                    ((section, name, "checks", i, "name"),
                     f"check name {cname!r} is already used by checks[{seen[cname]}]; "
                     "give each check of the same type a distinct name")
                )
            seen.setdefault(cname, i)
    problems.extend(_cycles(inv))
    problems.extend(_alerting(inv))
    problems.extend(oncall_problems(inv.oncall, channels=inv.channels.named))
    problems.extend(backup_problems(inv))
    problems.extend(failover_problems(inv))
    problems.extend(slo_problems(inv))
    problems.extend(gameday_problems(inv))
    problems.extend(job_problems(inv))
    problems.extend(capacity_problems(inv))
    problems.extend(secret_problems(inv))
    problems.extend(auto_problems(inv))
    return problems


def _alerting(inv: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """Receivers naming undefined channels, rule expressions the PromQL engine refuses (syntax,
    or a construct outside its subset), and `service` labels naming no component. The engine
    is loaded only when there are rules."""
    from opsplane.alerts.checks import channel_problems

    problems = channel_problems(inv.alerting, inv.channels.named)
    if not inv.alerting.rules:
        return problems
    from opsplane.alerts.checks import expression_problems, label_problems
    from opsplane.metrics.promql import parse

    return [*problems, *expression_problems(inv.alerting, parse),
            *label_problems(inv.alerting, [name for _, name, _ in inv.components()])]


def _cycles(inv: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """Every dependency cycle once, found by a depth-first walk with its own stack (a chain
    thousands of components deep must not exhaust Python's recursion limit)."""
    graph = {name: list(c.depends_on) for _, name, c in inv.components()}
    section_of = {name: section for section, name, _ in inv.components()}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    reported: set[frozenset[str]] = set()

    for root in graph:
        if root in state:
            continue
        state[root] = 1
        trail, pending = [root], [iter(graph[root])]
        while trail:
            node = trail[-1]
            dep = next(pending[-1], None)
            if dep is None:
                state[node] = 2
                trail.pop()
                pending.pop()
            elif dep not in graph or dep == node:  # unknown and self references are reported apart
                continue
            elif state.get(dep) == 1:
                cycle = trail[trail.index(dep):] + [dep]
                if (key := frozenset(cycle)) not in reported:
                    reported.add(key)
                    problems.append(((section_of[node], node, "depends_on"),
                                     "dependency cycle: " + " -> ".join(cycle)))
            elif dep not in state:
                state[dep] = 1
                trail.append(dep)
                pending.append(iter(graph[dep]))
    return problems


def _names(mapping: dict[str, Any]) -> str:
    return ", ".join(sorted(mapping)) or "(none defined)"


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_fields(path: tuple[str | int, ...], data: Any) -> list[str]:
    """Field names allowed at `path`, for 'did you mean' hints on unknown fields."""
    model: type[BaseModel] | None = Inventory
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part]
        else:
            data = None
        if model is None:
            return []
        if isinstance(part, int):
            # an item of the checks list: its own type says which model applies
            if isinstance(data, dict) and data.get("type") in CHECK_MODELS:
                model = CHECK_MODELS[data["type"]]
            continue
        field = model.model_fields.get(part)
        if field is not None:
            model = _inner_model(field.annotation)
        # otherwise a dict key (a component or environment name): the model stays
    return sorted(model.model_fields) if model else []


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _translate(exc: ValidationError, doc: LocatedDocument) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        if error["type"] == "extra_forbidden":
            # the last part is the user's key, whatever it holds ('[' looks like pydantic's tags)
            loc = _clean_loc(error["loc"][:-1]) + (error["loc"][-1],)
        if error["type"] == "union_tag_invalid":
            loc = loc + ("type",)  # point at the wrong type, not at the whole check
        message = _message(error, loc, doc)
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        # a bad mapping key (extra field, invalid name) is located at the key, not its value
        at_key = error["type"] == "extra_forbidden" or "[key]" in error["loc"]
        problems.append(doc.problem(loc, message, at_key=at_key))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return problems


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union tags (check types) and validator names from a location."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in CHECK_TYPES and i > 0 and isinstance(loc[i - 1], int):
            continue
        if part in CHANNEL_TYPES and i == 3 and loc[:2] == ("channels", "named"):
            continue  # the union tag of channels.named.NAME
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
    return tuple(out)


def _message(error: Any, loc: tuple[str | int, ...], doc: LocatedDocument) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        field = str(loc[-1])
        allowed = _model_fields(loc[:-1], doc.data)
        hint = _suggest(field, allowed) if allowed else ""
        return f"unknown field {field!r}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}, got {value!r}"
    if kind == "enum":
        return f"expected {ctx.get('expected')}, got {value!r}"
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc[:2] == ("channels", "named"):
        return (f"unknown channel type {ctx.get('tag')!r}; " if kind == "union_tag_invalid" else
                "a channel needs a 'type': ") + f"one of {', '.join(CHANNEL_TYPES)}"
    if kind == "union_tag_invalid":
        return (f"unknown check type {ctx.get('tag')!r}; expected one of "
                f"{', '.join(CHECK_TYPES)}{_suggest(str(ctx.get('tag')), CHECK_TYPES)}")
    if kind == "union_tag_not_found":
        return f"a check needs a 'type': one of {', '.join(CHECK_TYPES)}"
    if kind == "string_pattern_mismatch" and loc and isinstance(loc[-1], str):
        return (f"invalid name {value!r}: use lowercase letters, digits, '-', '_' and '.', "
                "starting with a lowercase letter or digit")
    if kind == "string_too_long" and loc and isinstance(loc[-1], str):
        return f"invalid name {value!r}: at most {ctx.get('max_length')} characters"
    if loc and loc[-1] in _PORT_FIELDS and kind in _PORT_ERRORS:
        return f"expected a port number from 1 to 65535, got {value!r}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_kind_of(value)}"
    if kind == "list_type":
        return f"expected a list, got {_kind_of(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {value!r}"
    if kind in ("string_type",):
        return f"expected text, got {_kind_of(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {value!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return error["msg"].replace("Input should be", "expected a value") + f", got {value!r}"
    if kind == "too_short":
        return "expected at least one item"
    return error["msg"]


_PORT_FIELDS = ("port", "listen_port")
_PORT_ERRORS = (
    "int_type", "int_parsing", "int_from_float", "greater_than_equal", "less_than_equal"
)


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


__all__ = ["DEFAULT_PATH", "SECTIONS", "InventoryNotFound", "cross_check", "default_path", "load",
           "load_with_warnings", "loads"]
