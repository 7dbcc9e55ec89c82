"""Reading an OpenSLO v1 indicator (SLI) into opsplane's: events from a ratio of Prometheus
counter selectors, latency from a histogram's bucket over its count (or a threshold metric on
a histogram), checks from metric source type `opsplane`. Everything else is refused with the
field's path and a sentence saying what opsplane takes instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsplane.metrics.promql import PromQLError, parse
from opsplane.metrics.promql.syntax import VectorSelector

PROMETHEUS = "Prometheus"
OPSPLANE_SOURCE = "opsplane"
_WHOLE_LE = re.compile(r"^(\d+)\(\\\.0\)\?$")


class Refused(Exception):
    """Something at `path` of a document opsplane cannot express, and why (a sentence)."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path = path
        self.message = message
        self.document: int | None = None  # when it lies in another document than the SLO's


def indicator(
    spec: dict[str, Any],
    objective: dict[str, Any],
    objective_path: tuple[str | int, ...],
    indicators: Mapping[str, Any],
    sources: Mapping[str, Any],
) -> dict[str, Any]:
    """The `sli:` fields of an SLO document's spec (its inline indicator or the SLI document it
    names); Refused when opsplane cannot compute it. `indicators` are the file's SLI documents
    (number, document) and `sources` its DataSource documents' types, by name."""
    document: int | None = None
    if spec.get("indicator") is not None:
        path: tuple[str | int, ...] = ("spec", "indicator", "spec")
        sli_spec = mapping(mapping(spec["indicator"], ("spec", "indicator")).get("spec"), path)
    elif spec.get("indicatorRef") is not None:
        ref = spec["indicatorRef"]
        if ref not in indicators:
            raise Refused(("spec", "indicatorRef"), f"no SLI document named {ref!r} in the file")
        document, path = indicators[ref][0], ("spec",)
        sli_spec = mapping(indicators[ref][1].get("spec"), path)
    else:
        raise Refused(("spec",), "an SLO needs an indicator or an indicatorRef")
    try:
        if sli_spec.get("ratioMetric") is not None:
            ratio_path = (*path, "ratioMetric")
            return _ratio_sli(mapping(sli_spec["ratioMetric"], ratio_path), ratio_path, sources)
        if sli_spec.get("thresholdMetric") is not None:
            return _threshold_sli(sli_spec["thresholdMetric"], (*path, "thresholdMetric"), objective,
                                  objective_path, sources)
        raise Refused(path, "the indicator has neither ratioMetric nor thresholdMetric")
    except Refused as refused:
        # a problem of a separate SLI document is shown there, not at the SLO naming it
        if document is not None and refused.path[:len(objective_path)] != objective_path:
            refused.document = document
        raise


def _ratio_sli(
    ratio: dict[str, Any], path: tuple[str | int, ...], sources: Mapping[str, Any]
) -> dict[str, Any]:
    if ratio.get("raw") is not None:
        raise Refused((*path, "raw"), "a precomputed ratio cannot be counted into events: give good or "
                       "bad, and total, as counters")
    if ratio.get("counter") is False:
        raise Refused((*path, "counter"), "opsplane counts events from counters (counter: true); a gauge "
                       "that goes up and down cannot be turned into events")
    given = [key for key in ("good", "bad") if ratio.get(key) is not None]
    if len(given) != 1 or ratio.get("total") is None:
        raise Refused(path, "give total and exactly one of good and bad")
    kind = given[0]
    numerator_type, numerator = _source(ratio[kind], (*path, kind), sources)
    total_type, total = _source(ratio["total"], (*path, "total"), sources)
    if numerator_type != total_type:
        raise Refused(path, f"{kind} reads {numerator_type} and total {total_type}: both must read the same")
    if numerator_type == OPSPLANE_SOURCE:
        component = numerator.get("component")
        return {"checks": {"component": component} if component else {}}
    numerator_query = _selector(numerator, (*path, kind, "metricSource", "spec", "query"))
    total_query = _selector(total, (*path, "total", "metricSource", "spec", "query"))
    if kind == "good":
        latency = _as_latency(numerator_query, total_query)
        if latency is not None:
            return {"latency": latency}
    return {"events": {kind: numerator_query, "total": total_query}}


def _threshold_sli(metric: Any, path: tuple[str | int, ...], objective: dict[str, Any],
                   objective_path: tuple[str | int, ...], sources: Mapping[str, Any]) -> dict[str, Any]:
    source_type, source = _source(metric, path, sources)
    if source_type == OPSPLANE_SOURCE:
        raise Refused(path, "opsplane's check results are a ratioMetric (good and total)")
    query = _selector(source, (*path, "metricSource", "spec", "query"))
    name = query.split("{", 1)[0].strip()
    if not name.endswith("_bucket"):
        raise Refused((*path, "metricSource", "spec", "query"), "a threshold metric is compared value by "
                       "value, which opsplane does not do; it counts requests under a threshold from a "
                       "latency histogram: give its _bucket series, or a ratioMetric")
    op, value = objective.get("op"), objective.get("value")
    if op not in ("lt", "lte") or not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise Refused(objective_path, "a latency objective needs op lt or lte and a value in seconds, the "
                       "histogram's bucket boundary")
    if "le=" in query.replace(" ", ""):
        raise Refused((*path, "metricSource", "spec", "query"), "give the histogram without an le "
                       "matcher: the objective's value picks the bucket")
    histogram = name.removesuffix("_bucket") + query.strip()[len(name):]
    return {"latency": {"histogram": histogram, "threshold": float(value)}}


def _source(
    metric: Any, path: tuple[str | int, ...], sources: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    source = mapping(mapping(metric, path).get("metricSource"), (*path, "metricSource"))
    kind, via = source.get("type"), ""
    if kind is None and source.get("metricSourceRef") is not None:
        ref = source["metricSourceRef"]
        if ref not in sources:
            raise Refused((*path, "metricSource", "metricSourceRef"),
                           f"no DataSource named {ref!r} in the file")
        kind, via = sources[ref], f" (of the DataSource {ref})"
    if isinstance(kind, str) and kind.lower() == PROMETHEUS.lower():
        kind = PROMETHEUS
    if kind not in (PROMETHEUS, OPSPLANE_SOURCE):
        raise Refused((*path, "metricSource", "type"), f"metric source {kind!r}{via}: opsplane reads "
                       "Prometheus metrics (or its own check results, type opsplane)")
    return kind, mapping(source.get("spec"), (*path, "metricSource", "spec"))


def _selector(spec: dict[str, Any], path: tuple[str | int, ...]) -> str:
    query = spec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise Refused(path, "the Prometheus query is missing")
    try:
        tree = parse(query)
    except PromQLError as exc:
        raise Refused(path, f"not PromQL: {exc}") from None
    if not isinstance(tree, VectorSelector) or tree.offset:
        raise Refused(path, f"{query.strip()!r} is an expression: opsplane takes a counter's selector, "
                       "such as http_requests_total{status=~\"5..\"}, and computes the rates itself")
    return query.strip()


def _as_latency(good: str, total: str) -> dict[str, Any] | None:
    """A bucket-over-count pair of the same histogram as a latency SLI; None when it is not one."""
    good_tree, total_tree = parse(good), parse(total)
    assert isinstance(good_tree, VectorSelector) and isinstance(total_tree, VectorSelector)  # _selector
    names = {m.name: m.value for m in good_tree.matchers if m.name == "__name__"}
    total_name = total.split("{", 1)[0].strip()
    if not names.get("__name__", "").endswith("_bucket") or total_name != names["__name__"][:-7] + "_count":
        return None
    le = [m for m in good_tree.matchers if m.name == "le"]
    rest = {m for m in good_tree.matchers if m.name not in ("le", "__name__")}
    if len(le) != 1 or rest != {m for m in total_tree.matchers if m.name != "__name__"}:
        return None
    whole = _WHOLE_LE.match(le[0].value)
    try:
        threshold = float(whole.group(1)) if le[0].op == "=~" and whole else float(le[0].value)
    except ValueError:
        return None
    if le[0].op not in ("=", "=~") or (le[0].op == "=~" and whole is None) or threshold <= 0:
        return None
    return {"histogram": total_name[:-6] + total.strip()[len(total_name):], "threshold": threshold}


def mapping(value: Any, path: tuple[str | int, ...]) -> dict[str, Any]:
    """`value` when it is a mapping; Refused at `path` otherwise."""
    if not isinstance(value, dict):
        raise Refused(path, "expected a mapping")
    return value
