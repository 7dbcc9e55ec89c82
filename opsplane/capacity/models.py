"""The inventory's `capacity:` section: the performance KPIs and their targets, what the capacity
worker records and how often, and the triggers its forecasts are held against.

The four KPIs of the manual are built in (`BUILTIN_KPIS`); an entry of `kpis` with a built-in's
name changes only the fields it gives, any other name adds a KPI of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from opsplane.config.types import Duration, Ratio, Strict, format_duration, parse_duration

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _parse_figure(value: Any) -> float:
    """A KPI's figure: a duration (300ms, 1s) for a latency, a percentage (80%) for a ratio,
    or a plain number in the KPI's own unit (seconds or a fraction)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 300ms or a percentage such as 80%, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1]) / 100
    return parse_duration(value)


def _parse_bytes(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    found = _BYTES.match(str(value)) if isinstance(value, str) else None
    if found is None or float(found[1]) <= 0:
        raise ValueError(f"expected a size such as 10GiB, 500MB or a number of bytes, got {value!r}")
    return int(float(found[1]) * _UNITS[found[2]])


Figure = Annotated[float, BeforeValidator(_parse_figure), WithJsonSchema({
    "anyOf": [{"type": "string"}, {"type": "number"}],
    "description": "A duration (300ms, 1s) for a latency KPI, a percentage (80%) for a ratio KPI."})]
Bytes = Annotated[int, BeforeValidator(_parse_bytes), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$"},
              {"type": "integer", "exclusiveMinimum": 0}],
    "description": "A size: 10GiB, 500MB or a number of bytes."})]


class KpiSettings(Strict):
    """One KPI: a latency quantile from a histogram, or a ratio of two counters' rates."""

    histogram: str | None = Field(
        None, description="Latency KPI: the histogram's name with matchers, without _bucket, e.g. "
        "http_request_duration_seconds{route=\"/api/search\"}.")
    quantile: float = Field(0.95, gt=0, lt=1, description="Latency KPI: the quantile, e.g. 0.95.")
    good: str | None = Field(None, description="Ratio KPI: the counter (with matchers) of good events.")
    total: str | None = Field(None, description="Ratio KPI: the counter (with matchers) of all events.")
    target: Figure | None = Field(None, description="The figure aimed at: below it for a latency, above "
                                  "it for a ratio.")
    warning: Figure | None = Field(None, description="Past this the KPI is a warning finding.")
    critical: Figure | None = Field(None, description="Past this the KPI is a critical finding.")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> KpiSettings:
        if self.histogram is not None and (self.good is not None or self.total is not None):
            raise ValueError("give either histogram (a latency) or good and total (a ratio), not both")
        if (self.good is None) != (self.total is None):
            raise ValueError("a ratio KPI needs both good and total")
        return self


@dataclass(frozen=True)
class Kpi:
    """A KPI resolved from the built-ins and the inventory."""

    name: str
    kind: Literal["latency", "ratio"]
    about: str
    target: float
    warning: float
    critical: float
    histogram: str = ""
    quantile: float = 0.95
    good: str = ""
    total: str = ""

    @property
    def higher_is_worse(self) -> bool:
        return self.kind == "latency"


def _with_suffix(selector: str, suffix: str) -> str:
    name, brace, rest = selector.strip().partition("{")
    return f"{name}{suffix}{brace}{rest}"


def expression(kpi: Kpi, window: float) -> str:
    """The KPI's PromQL over `window` seconds."""
    span = format_duration(window)
    if kpi.kind == "latency":
        return (f"histogram_quantile({kpi.quantile:g}, sum by (le) "
                f"(rate({_with_suffix(kpi.histogram, '_bucket')}[{span}])))")
    return f"sum(rate({kpi.good}[{span}])) / sum(rate({kpi.total}[{span}]))"


# The manual's targets (PERF-1).
BUILTIN_KPIS: tuple[Kpi, ...] = (
    Kpi("search", "latency", "search answers, 95th percentile", 0.3, 0.5, 1.0,
        histogram='http_request_duration_seconds{route=~"(/api)?/search"}'),
    Kpi("api_p95", "latency", "API answers, 95th percentile", 0.2, 0.5, 1.0,
        histogram='http_request_duration_seconds{route!~"/health.*|/metrics|/version"}'),
    Kpi("db_query_p95", "latency", "database statements, 95th percentile", 0.05, 0.1, 0.2,
        histogram="db_query_duration_seconds"),
    Kpi("cache_hit_rate", "ratio", "cache look-ups answered from the cache", 0.8, 0.7, 0.5,
        good='cache_requests_total{result="hit"}', total="cache_requests_total"),
)


class DirectorySettings(Strict):
    """A directory recorded as a resource of its own: its files' bytes over a size given here
    (an upload area, a spool, a quota)."""

    path: str = Field(description="The directory; relative paths start at the inventory's directory.")
    size: Bytes = Field(description="What it may hold: its use is its files' bytes over this.")


class CapacityThresholds(Strict):
    """The manual's scaling triggers (PERF-3)."""

    cpu: Ratio = Field(0.70, description="CPU busy, sustained: add instances or cores.")
    memory: Ratio = Field(0.80, description="Memory used: add memory or instances.")
    disk: Ratio = Field(0.85, description="A filesystem's or directory's use: grow it or clean up.")
    db_pool: Ratio = Field(0.80, description="A service's database pool in use: raise the pool or add a "
                           "pooler.")
    request_rate: float | None = Field(
        None, gt=0, description="Requests per second a service is sized for (none: its rate is only "
        "trended, never held against a trigger).")


class CapacitySettings(Strict):
    """The KPIs (`opsplane report kpi`), load tests and capacity forecasts; present, `serve`
    records each resource's use every `interval` (docs/capacity.md)."""

    interval: Duration = Field(300.0, description="How often `serve` records each resource's use.")
    window: Duration = Field(3600.0, description="The span the KPIs' rates and quantiles are taken over.")
    kpis: dict[str, KpiSettings] = Field(
        default_factory=dict, description="By name: a built-in KPI's figures changed (search, api_p95, "
        "db_query_p95, cache_hit_rate), or a KPI of its own.")
    disks: list[str] = Field(default_factory=lambda: ["/"],
                             description="Filesystems whose use is recorded (statvfs of each path).")
    directories: dict[str, DirectorySettings] = Field(default_factory=dict)
    thresholds: CapacityThresholds = Field(default_factory=CapacityThresholds)
    horizon: Duration = Field(90 * 86400.0, description="How far ahead forecasts look.")
    min_history: Duration = Field(86400.0, description="How much history a resource needs before its "
                                  "trend is forecast: with less, a few minutes' slope or part of a day's "
                                  "swing would be read as growth.")
    warn_within: Duration = Field(30 * 86400.0, description="A trigger forecast to be crossed within this "
                                  "is a warning.")
    critical_within: Duration = Field(7 * 86400.0, description="... within this, critical.")
    minutes_kept: Duration = Field(7 * 86400.0, description="How long each recording is kept.")
    hours_kept: Duration = Field(400 * 86400.0, description="How long the hourly means are kept.")


def capacity_problems(inv: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """KPIs of the inventory's own without their definition or levels, and KPI expressions the
    PromQL engine refuses, each with its path in the file."""
    settings: CapacitySettings | None = inv.capacity
    if settings is None:
        return []
    from opsplane.metrics.promql import PromQLError
    from opsplane.metrics.promql.syntax import parse

    found: list[tuple[tuple[str | int, ...], str]] = []
    builtin = {k.name for k in BUILTIN_KPIS}
    for name, kpi in settings.kpis.items():
        path: tuple[str | int, ...] = ("capacity", "kpis", name)
        if name in builtin or not kpi.enabled:
            continue
        if kpi.histogram is None and kpi.good is None:
            found.append((path, "a KPI of its own needs histogram, or good and total"))
        elif None in (kpi.target, kpi.warning, kpi.critical):
            found.append((path, "a KPI of its own needs target, warning and critical"))
    if found:
        return found
    for resolved in resolve_kpis(settings):
        try:
            parse(expression(resolved, settings.window))
        except PromQLError as exc:
            found.append((("capacity", "kpis", resolved.name), f"its PromQL does not parse: {exc}"))
    return found


def resolve_kpis(settings: CapacitySettings | None) -> list[Kpi]:
    """The built-in KPIs with the inventory's changes, then the inventory's own; disabled ones out."""
    given = settings.kpis if settings is not None else {}
    found: list[Kpi] = []
    for kpi in BUILTIN_KPIS:
        change = given.get(kpi.name)
        if change is None:
            found.append(kpi)
            continue
        if not change.enabled:
            continue
        fields = {f: getattr(change, f) for f in change.model_fields_set if f != "enabled"}
        if "histogram" in fields:
            fields["kind"] = "latency"
        if "good" in fields:
            fields["kind"] = "ratio"
            fields.setdefault("histogram", "")
        found.append(Kpi(**{**kpi.__dict__, **{k: v for k, v in fields.items() if v is not None}}))
    for name, own in given.items():
        if name in {k.name for k in BUILTIN_KPIS} or not own.enabled:
            continue
        assert own.target is not None and own.warning is not None and own.critical is not None
        found.append(Kpi(name, "latency" if own.histogram else "ratio", name, own.target, own.warning,
                         own.critical, histogram=own.histogram or "", quantile=own.quantile,
                         good=own.good or "", total=own.total or ""))
    return found
