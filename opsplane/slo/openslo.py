"""The inventory's SLOs as OpenSLO v1 documents, and OpenSLO v1 files read back into them.

Writing: one `Service` document per service, then one `SLO` per objective with its indicator
inline: a `ratioMetric` of Prometheus counter selectors (a latency SLI as its histogram's bucket
at the threshold over its `_count`; a checks SLI as metric source type `opsplane`), the time
window, the budgeting method and one objective. What OpenSLO has no field for (the burn alerts'
settings, the deploy freeze, a name that is not an RFC 1123 label) travels in `opsplane/`
annotations, so that reading the file back gives the same SLOs.

Reading refuses, each with the document's number, the field's path and its line, what opsplane
cannot compute rather than approximating it: other metric sources than Prometheus, queries that
are not a plain counter selector, gauges, precomputed ratios, threshold metrics that are not a
latency histogram, several or composite objectives, ratio time slices, and windows that do not
start where opsplane's do. AlertPolicy and the like are skipped with a note: opsplane derives
its burn alerts from the SLO itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError

from opsplane.errors import OpsplaneError
from opsplane.slo.models import BurnAlerts, Slo
from opsplane.slo.openslo_sli import OPSPLANE_SOURCE, PROMETHEUS, Refused, indicator, mapping
from opsplane.slo.prometheus_rules import histogram_series, le_matcher

API_VERSION = "openslo/v1"
NAME_ANNOTATION = "opsplane/name"
ALERTS_ANNOTATION = "opsplane/alerts"
DEPLOY_GATE_ANNOTATION = "opsplane/deploy-gate"
# Any first day of a year is the first day of a month and of a quarter.
CALENDAR_START = "2024-01-01 00:00:00"
_RFC1123 = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SLO_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SKIPPED_KINDS = ("AlertPolicy", "AlertCondition", "AlertNotificationTarget")


# --- writing -----------------------------------------------------------------------------------


def to_openslo(slos: Mapping[str, Slo]) -> list[dict[str, Any]]:
    """Service documents (one per service, sorted), then an SLO document per inventory SLO."""
    services = sorted({slo.service for slo in slos.values()})
    documents: list[dict[str, Any]] = [
        {"apiVersion": API_VERSION, "kind": "Service", "metadata": {"name": service}, "spec": {}}
        for service in services
    ]
    documents += [_slo_document(name, slo) for name, slo in slos.items()]
    return documents


def dump(documents: Sequence[Mapping[str, Any]]) -> str:
    """The documents as one multi-document YAML text."""
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, explicit_start=True)


def _slo_document(name: str, slo: Slo) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name if _RFC1123.match(name) else _rfc1123(name)}
    annotations: dict[str, str] = {}
    if metadata["name"] != name:
        annotations[NAME_ANNOTATION] = name
    alerts = slo.alerts.model_dump(mode="json", exclude_defaults=True)
    if alerts:
        annotations[ALERTS_ANNOTATION] = json.dumps(alerts, sort_keys=True)
    if not slo.deploy_gate:
        annotations[DEPLOY_GATE_ANNOTATION] = "false"
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {}
    if slo.description:
        spec["description"] = slo.description
    spec["service"] = slo.service
    spec["indicator"] = {"metadata": {"name": metadata["name"]}, "spec": {"ratioMetric": _ratio_metric(slo)}}
    if slo.calendar is not None:
        spec["timeWindow"] = [{
            "duration": "1M" if slo.calendar.unit == "month" else "1Q",
            "calendar": {"startTime": CALENDAR_START, "timeZone": slo.calendar.timezone},
            "isRolling": False,
        }]
    else:
        spec["timeWindow"] = [{"duration": _shorthand(slo.rolling_seconds or 0.0), "isRolling": True}]
    objective: dict[str, Any] = {"target": slo.objective}
    if slo.budgeting == "timeslices":
        spec["budgetingMethod"] = "Timeslices"
        objective["timeSliceTarget"] = slo.slice_target
        objective["timeSliceWindow"] = _shorthand(slo.timeslice)
    else:
        spec["budgetingMethod"] = "Occurrences"
    spec["objectives"] = [objective]
    return {"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": spec}


def _ratio_metric(slo: Slo) -> dict[str, Any]:
    def prometheus(query: str) -> dict[str, Any]:
        return {"metricSource": {"type": PROMETHEUS, "spec": {"query": query}}}

    if slo.sli.events is not None:
        events = slo.sli.events
        numerator = ("good", events.good) if events.good is not None else ("bad", events.bad or "")
        return {"counter": True, numerator[0]: prometheus(numerator[1]), "total": prometheus(events.total)}
    if slo.sli.latency is not None:
        latency = slo.sli.latency
        bucket = histogram_series(latency.histogram, "_bucket", le_matcher(latency.threshold))
        return {"counter": True, "good": prometheus(bucket),
                "total": prometheus(histogram_series(latency.histogram, "_count"))}
    checks = slo.sli.checks
    component = {"component": checks.component} if checks is not None and checks.component else {}
    return {"counter": True,
            "good": {"metricSource": {"type": OPSPLANE_SOURCE,
                                      "spec": {"source": "checks", "result": "ok", **component}}},
            "total": {"metricSource": {"type": OPSPLANE_SOURCE, "spec": {"source": "checks", **component}}}}


def _shorthand(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    # OpenSLO durations count whole minutes at the finest; a window of 90.5 minutes is not one
    return f"{round(seconds / 60)}m"


def _rfc1123(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name).strip("-")[:63].rstrip("-") or "slo"


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSloProblem:
    """One thing in an OpenSLO file that opsplane cannot take, and where it is."""

    file: str
    document: int  # 1-based, in file order
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        path = f" {self.path}:" if self.path else ""
        return f"{where}: document {self.document},{path} {self.message}"


class OpenSloError(OpsplaneError):
    """The OpenSLO file holds something opsplane cannot express; nothing was imported."""

    exit_code = 3

    def __init__(self, problems: list[OpenSloProblem]):
        self.problems = problems
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the OpenSLO file"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class Imported:
    """The SLOs read, by name, and what was skipped on purpose."""

    slos: dict[str, Slo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load(text: str, *, file: str = "<openslo>") -> Imported:
    """The SLOs of a multi-document OpenSLO v1 text; OpenSloError naming every problem."""
    try:
        nodes = list(yaml.compose_all(text))
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise OpenSloError([OpenSloProblem(file, 0, line, "", f"not YAML: {exc}")]) from None
    present = [(n, d, node) for n, (d, node) in enumerate(zip(documents, nodes, strict=True), 1)
               if d is not None]
    return from_documents([(n, d) for n, d, _ in present], file=file,
                          nodes={n: node for n, _, node in present})


def from_documents(
    documents: Sequence[tuple[int, Any]],
    *,
    file: str = "<openslo>",
    nodes: Mapping[int, yaml.Node] | None = None,
) -> Imported:
    """The SLOs of (number, document) pairs as `load` reads them; OpenSloError naming every problem."""
    nodes = nodes or {}
    problems: list[OpenSloProblem] = []
    imported = Imported()
    indicators: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    slo_documents: list[tuple[int, dict[str, Any]]] = []

    def refuse(number: int, path: tuple[str | int, ...], message: str) -> None:
        shown = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in path)
        problems.append(OpenSloProblem(file, number, _line(nodes.get(number), path), shown.replace(".[", "["),
                                       message))

    for number, document in documents:
        if not isinstance(document, dict):
            refuse(number, (), "expected a mapping with apiVersion, kind, metadata and spec")
            continue
        if document.get("apiVersion") != API_VERSION:
            refuse(number, ("apiVersion",),
                   f"opsplane reads {API_VERSION}, not {document.get('apiVersion')!r}")
            continue
        kind, name = document.get("kind"), _get(document, "metadata", "name")
        if kind == "SLO":
            slo_documents.append((number, document))
        elif kind == "SLI" and isinstance(name, str):
            indicators[name] = (number, document)
        elif kind == "DataSource" and isinstance(name, str):
            sources[name] = _get(document, "spec", "type")
        elif kind in _SKIPPED_KINDS:
            imported.notes.append(f"document {number}: {kind} {name} is not imported: opsplane pages on "
                                  "burn rates it derives from each SLO (the SLO's alerts:)")
        elif kind != "Service":
            refuse(number, ("kind",), f"unknown kind {kind!r}")
    for number, document in slo_documents:
        try:
            name, slo = _slo(document, indicators, sources)
        except Refused as refused:
            refuse(refused.document or number, refused.path, refused.message)
            continue
        if name in imported.slos:
            refuse(number, ("metadata", "name"), f"a second SLO named {name}")
            continue
        imported.slos[name] = slo
    if problems:
        raise OpenSloError(problems)
    return imported


def _slo(
    document: dict[str, Any], indicators: Mapping[str, Any], sources: Mapping[str, Any]
) -> tuple[str, Slo]:
    metadata = mapping(document.get("metadata"), ("metadata",))
    annotations = mapping(metadata.get("annotations") or {}, ("metadata", "annotations"))
    name = annotations.get(NAME_ANNOTATION) or metadata.get("name")
    if not isinstance(name, str) or not _SLO_NAME.match(name) or len(name) > 63:
        raise Refused(("metadata", "name"), f"{name!r} is not an SLO name: lowercase letters, digits, "
                       "'-', '_' and '.', at most 63")
    spec = mapping(document.get("spec"), ("spec",))
    service = spec.get("service")
    if not isinstance(service, str) or not service:
        raise Refused(("spec", "service"), "the service the SLO is about is missing")
    fields: dict[str, Any] = {"service": service}
    if spec.get("description"):
        fields["description"] = str(spec["description"])
    objective, objective_path = _objective(spec)
    fields["objective"] = _target(objective, objective_path)
    fields["sli"] = indicator(spec, objective, objective_path, indicators, sources)
    fields.update(_window(spec.get("timeWindow")))
    fields.update(_budgeting(spec.get("budgetingMethod"), objective, objective_path, fields["objective"]))
    if ALERTS_ANNOTATION in annotations:
        try:
            fields["alerts"] = BurnAlerts.model_validate(json.loads(annotations[ALERTS_ANNOTATION]))
        except (ValueError, ValidationError) as exc:
            raise Refused(("metadata", "annotations", ALERTS_ANNOTATION),
                           f"not opsplane's burn alert settings: {_first_error(exc)}") from None
    if DEPLOY_GATE_ANNOTATION in annotations:
        fields["deploy_gate"] = str(annotations[DEPLOY_GATE_ANNOTATION]).lower() != "false"
    try:
        return name, Slo.model_validate(fields)
    except ValidationError as exc:
        raise Refused(("spec",), _first_error(exc)) from None


def _objective(spec: dict[str, Any]) -> tuple[dict[str, Any], tuple[str | int, ...]]:
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise Refused(("spec", "objectives"), "an SLO needs one objective with a target")
    if len(objectives) > 1:
        raise Refused(("spec", "objectives"), f"{len(objectives)} objectives: opsplane keeps one per SLO; "
                       "write one SLO per objective")
    objective = mapping(objectives[0], ("spec", "objectives", 0))
    if objective.get("indicator") is not None or objective.get("indicatorRef") is not None:
        raise Refused(("spec", "objectives", 0), "a composite SLO (an indicator per objective) is not "
                       "supported: write one SLO per indicator")
    return objective, ("spec", "objectives", 0)


def _target(objective: dict[str, Any], path: tuple[str | int, ...]) -> float:
    if "target" in objective and "targetPercent" in objective:
        raise Refused(path, "give target or targetPercent, not both")
    if "target" in objective:
        value, key, scale = objective["target"], "target", 1.0
    elif "targetPercent" in objective:
        value, key, scale = objective["targetPercent"], "targetPercent", 100.0
    else:
        raise Refused(path, "the objective has no target (or targetPercent)")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < scale:
        raise Refused((*path, key), f"{value!r} is not a target above 0 and below {scale:g}")
    return round(float(value) / scale, 12) if scale != 1.0 else float(value)


def _window(windows: Any) -> dict[str, Any]:
    if windows is None:
        return {}
    if not isinstance(windows, list) or len(windows) != 1:
        raise Refused(("spec", "timeWindow"), "timeWindow takes exactly one window")
    path: tuple[str | int, ...] = ("spec", "timeWindow", 0)
    window = mapping(windows[0], path)
    duration = str(window.get("duration", ""))
    found = _SHORTHAND.match(duration)
    if found is None:
        raise Refused((*path, "duration"), f"{duration!r} is not a duration such as 28d, 4w or 1M")
    count, unit = int(found.group(1)), found.group(2)
    calendar = window.get("calendar")
    rolling = window.get("isRolling", calendar is None)
    if rolling:
        if unit not in _UNITS:
            raise Refused((*path, "duration"), f"a rolling window of {duration} has no fixed length: "
                           "give it in days or weeks")
        seconds = count * _UNITS[unit]
        return {} if seconds == 30 * 86400 else {"window": float(seconds)}
    return {"calendar": _calendar(path, duration, count, unit, calendar)}


def _calendar(
    path: tuple[str | int, ...], duration: str, count: int, unit: str, calendar: Any
) -> dict[str, Any]:
    units = {("M", 1): "month", ("Q", 1): "quarter", ("M", 3): "quarter"}
    picked = units.get((unit, count))
    if picked is None:
        raise Refused((*path, "duration"), f"a calendar window of {duration}: opsplane's are a month (1M) "
                       "or a quarter (1Q)")
    settings = mapping(calendar or {}, (*path, "calendar"))
    zone = settings.get("timeZone", "UTC")
    start = settings.get("startTime")
    if start is not None:
        try:
            began = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
        except ValueError:
            raise Refused((*path, "calendar", "startTime"), f"{start!r} is not a date and time") from None
        first_months = range(1, 13) if picked == "month" else (1, 4, 7, 10)
        midnight_on_the_first = (began.day, began.hour, began.minute, began.second) == (1, 0, 0, 0)
        if not midnight_on_the_first or began.month not in first_months:
            raise Refused((*path, "calendar", "startTime"), f"a {picked} starting {start}: opsplane's "
                           f"calendar windows start at midnight on the first day of a {picked}")
    return {"unit": picked, "timezone": zone}


def _budgeting(
    method: Any, objective: dict[str, Any], path: tuple[str | int, ...], target: float
) -> dict[str, Any]:
    if method == "Occurrences":
        return {}
    if method == "RatioTimeslices":
        raise Refused(("spec", "budgetingMethod"), "RatioTimeslices averages the slices' ratios; opsplane "
                       "counts each slice good or bad: use Timeslices or Occurrences")
    if method != "Timeslices":
        raise Refused(("spec", "budgetingMethod"), f"{method!r}: expected Occurrences or Timeslices")
    fields: dict[str, Any] = {"budgeting": "timeslices"}
    window = objective.get("timeSliceWindow")
    if window is not None:
        if isinstance(window, int | float) and not isinstance(window, bool):
            fields["timeslice"] = float(window) * 60  # a bare number counts minutes
        else:
            found = _SHORTHAND.match(str(window))
            if found is None or found.group(2) not in _UNITS:
                raise Refused((*path, "timeSliceWindow"),
                               f"{window!r} is not a slice length such as 1m or 5m")
            fields["timeslice"] = float(int(found.group(1)) * _UNITS[found.group(2)])
    slice_target = objective.get("timeSliceTarget")
    if slice_target is None:
        raise Refused(path, "Timeslices budgeting needs timeSliceTarget: the ratio a good slice reaches")
    if slice_target != target:
        fields["timeslice_target"] = slice_target
    return fields


def _get(document: dict[str, Any], *keys: str) -> Any:
    value: Any = document
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _first_error(exc: ValueError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc)


def _line(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest node of `path` present in the document's YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        child: yaml.Node | None = None
        at = None
        if isinstance(node, yaml.MappingNode):
            # the key's line: a nested mapping's value only starts on the next one
            at, child = next(((key, value) for key, value in node.value if key.value == part), (None, None))
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            at = child = node.value[part]
        if child is None or at is None:
            break
        node, line = child, at.start_mark.line + 1
    return line
