"""The dashboard's charts over time: a service's error ratio, request rate and latency over a
range the reader picks, and the request rates behind the overview's sparklines.

Nothing here keeps data of its own. Metrics come from the samples `serve` already scrapes into
its `SampleStore`, through the PromQL engine (`rate`, sums by status, `histogram_quantile`),
so they reach back as far as `metrics.window` (an hour unless configured). Probe latency comes
from `ProbeHistory`, which keeps every check's last day at four resolutions. Each range draws
60 points: 15 minutes in 15 s steps (a fresh demo's first minutes), an hour in minutes, 6 hours
in 6-minute steps, 24 hours in 24-minute steps. A firing (or pending) alert rule of the service
whose expression compares one of these quantities with a number is drawn as a line at that
number (`chart_rules.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from opsplane.health.history import TIERS
from opsplane.metrics.scrape import REQUESTS, STATUS_LABELS
from opsplane.units import Unit, format_value
from opsplane.web.linechart import Line, Threshold, time_chart

if TYPE_CHECKING:
    from opsplane.live import LiveState
    from opsplane.metrics.promql import SeriesSource

HISTOGRAM = "http_request_duration_seconds_bucket"  # the one the built-in latency rules read
QUANTILES = (0.5, 0.95, 0.99)
MAX_CHECK_LINES = 6  # more checks than this are drawn as their mean


class ChartRange(StrEnum):
    """The ranges a reader can pick, each drawn from its own tier of the probe history."""

    MINUTES_15 = "15m"
    HOUR = "1h"
    HOURS_6 = "6h"
    DAY = "24h"

    @property
    def seconds(self) -> float:
        return _SECONDS[self]

    @property
    def tier(self) -> int:
        return list(ChartRange).index(self)

    @property
    def step(self) -> float:
        """Seconds between two points: one bucket of the probe history's tier."""
        return TIERS[self.tier]

    @property
    def words(self) -> str:
        return {"15m": "15 min", "1h": "1 h", "6h": "6 h", "24h": "24 h"}[self.value]


_SECONDS = {ChartRange.MINUTES_15: 900.0, ChartRange.HOUR: 3600.0, ChartRange.HOURS_6: 21600.0,
            ChartRange.DAY: 86400.0}


def default_range(started_at: datetime | None, now: datetime) -> ChartRange:
    """15 minutes while `serve` is younger than that (so its first minutes fill the chart),
    an hour after."""
    young = started_at is None or (now - started_at).total_seconds() < ChartRange.MINUTES_15.seconds
    return ChartRange.MINUTES_15 if young else ChartRange.HOUR


def rate_window(step: float, scrape_interval: float) -> float:
    """The `rate()` window of a chart: a step, and never fewer than four scrapes, which is
    what a rate needs to be steady (Prometheus' own advice)."""
    return max(step, 4 * scrape_interval)


# --- metrics through PromQL -----------------------------------------------------------------


@dataclass(frozen=True)
class RequestRates:
    """Requests per second at each time, and the part answered with a 5xx status."""

    times: tuple[float, ...]
    requests: tuple[float | None, ...]
    server_errors: tuple[float | None, ...]

    @property
    def latest(self) -> float | None:
        return next((r for r in reversed(self.requests) if r is not None), None)

    def error_ratios(self) -> list[float | None]:
        """5xx share of the requests at each time; None where none were served."""
        return [None if not total else (errors or 0.0) / total
                for total, errors in zip(self.requests, self.server_errors, strict=True)]


def steps(end: float, length: float, step: float) -> list[float]:
    """The times of a chart's points: `length / step` of them, the last at `end`."""
    count = max(1, round(length / step))
    return [end - (count - 1 - n) * step for n in range(count)]


def request_rates(source: SeriesSource, times: Sequence[float], *, window: float,
                  service: str | None = None) -> dict[str, RequestRates]:
    """The request rates of every scraped service (or of `service`) at `times`: one range query
    of `http_requests_total` summed by service and status."""
    from opsplane.metrics.promql import range_query

    selector = f"{REQUESTS}{{service={_quoted(service)}}}" if service else REQUESTS
    expr = (f"sum by (service, {', '.join(STATUS_LABELS)}) "
            f"(rate({selector}[{_duration(window)}]))")
    step = times[1] - times[0] if len(times) > 1 else 1.0
    found = range_query(expr, source, times[0], times[-1], step)
    index = {round(t, 3): n for n, t in enumerate(times)}
    totals: dict[str, list[float | None]] = {}
    errors: dict[str, list[float | None]] = {}
    for labels, samples in found.series:
        values = dict(labels)
        name = values.get("service", "")
        server_error = any(values.get(label, "").startswith("5") for label in STATUS_LABELS)
        total = totals.setdefault(name, [None] * len(times))
        failed = errors.setdefault(name, [None] * len(times))
        for at, value in samples:
            n = index.get(round(at, 3))
            if n is None or math.isnan(value):
                continue
            total[n] = (total[n] or 0.0) + value
            failed[n] = (failed[n] or 0.0) + (value if server_error else 0.0)
    return {name: RequestRates(tuple(times), tuple(total), tuple(errors[name]))
            for name, total in totals.items()}


def latency_quantiles(source: SeriesSource, times: Sequence[float], *, window: float,
                      service: str) -> dict[float, list[float | None]]:
    """p50, p95 and p99 of the service's request duration histogram at `times`; empty when it
    exposes no such histogram. One range query gives the buckets' rates summed by `le`; the
    quantiles are the engine's own interpolation over them, step by step."""
    from opsplane.metrics.promql import range_query
    from opsplane.metrics.promql.functions import bucket_quantile

    step = times[1] - times[0] if len(times) > 1 else 1.0
    index = {round(t, 3): n for n, t in enumerate(times)}
    rates = f"sum by (le) (rate({HISTOGRAM}{{service={_quoted(service)}}}[{_duration(window)}]))"
    buckets: list[list[tuple[float, float]]] = [[] for _ in times]
    for labels, samples in range_query(rates, source, times[0], times[-1], step).series:
        try:
            bound = float(dict(labels).get("le", ""))
        except ValueError:
            continue  # not a bucket, as histogram_quantile ignores it
        for at, value in samples:
            n = index.get(round(at, 3))
            if n is not None:
                buckets[n].append((bound, value))
    found: dict[float, list[float | None]] = {}
    for q in QUANTILES:
        values = [bucket_quantile(q, step_buckets) if step_buckets else math.nan
                  for step_buckets in buckets]
        if any(math.isfinite(v) for v in values):
            found[q] = [v if math.isfinite(v) else None for v in values]
    return found


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


# --- the thresholds of the service's alerts -------------------------------------------------


def alert_thresholds(plane: LiveState, service: str) -> dict[str, list[Threshold]]:
    """The firing and pending alerts of `service` whose rule compares a charted quantity with
    a number, by chart ("errors", "requests", "latency")."""
    if plane.alerting is None:
        return {}
    from opsplane.alerts import service as alerts
    from opsplane.alerts.pack import effective_rules
    from opsplane.alerts.state import AlertState, rule_id
    from opsplane.web.chart_rules import rule_threshold

    rules = {rule_id(rule): rule for rule in effective_rules(plane.inventory.alerting)}
    with plane.store.session() as session:
        stored = alerts.get_all(session)
    found: dict[str, list[Threshold]] = {}
    seen = set()
    for alert in stored:
        rule = rules.get(alert.rule)
        if (rule is None or alert.labels.get("service") != service
                or alert.state not in (AlertState.FIRING, AlertState.PENDING)):
            continue
        threshold = rule_threshold(rule.expr)
        if threshold is None or (alert.rule, alert.state) in seen:
            continue
        seen.add((alert.rule, alert.state))
        unit = {"errors": Unit.RATIO, "requests": Unit.PER_SECOND}.get(threshold.chart, Unit.SECONDS)
        firing = alert.state is AlertState.FIRING
        label = (f"{alert.name} {threshold.op} {format_value(threshold.value, unit)}"
                 + ("" if firing else " (pending)"))
        found.setdefault(threshold.chart, []).append(Threshold(threshold.value, label, firing))
    return found


# --- a service's charts ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceChart:
    """One chart of the service page: its heading, the SVG, the names of its lines in order
    (for the legend), and a sentence of what it shows now."""

    key: str
    title: str
    svg: Markup
    legend: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class ServiceCharts:
    chosen: ChartRange
    charts: tuple[ServiceChart, ...]
    notes: tuple[str, ...]
    scraped: bool

    @property
    def ranges(self) -> tuple[ChartRange, ...]:
        return tuple(ChartRange)


def service_charts(plane: LiveState, name: str, chosen: ChartRange) -> ServiceCharts:
    """The charts of component `name` over `chosen`, ending now."""
    now = plane.clock.now()
    end = now.timestamp()
    start = end - chosen.seconds
    times = steps(end, chosen.seconds, chosen.step)
    began = plane.started_at.timestamp() if plane.started_at else None
    thresholds = alert_thresholds(plane, name)
    notes: list[str] = []
    charts: list[ServiceChart] = []
    source = plane.scraper.locked_source() if name in plane.scraper.components else None
    quantiles: Mapping[float, list[float | None]] = {}
    if source is not None:
        window = plane.inventory.metrics.window
        interval = next(t.interval for t in plane.scraper.targets if t.component == name)
        rate_over = rate_window(chosen.step, interval)
        kept_from, why = _metrics_known_from(end, window, began)
        if chosen.seconds > window:
            notes.append(f"Metrics are kept in memory for {_words(window)} (metrics.window in the "
                         f"inventory), so the metric charts show nothing older than that; raise it "
                         f"to keep more.")
        rates = request_rates(source, times, window=rate_over, service=name).get(
            name, RequestRates(tuple(times), (None,) * len(times), (None,) * len(times)))
        common: dict[str, Any] = {"start": start, "end": end, "known_from": kept_from,
                                  "unknown_label": why}
        errors = rates.error_ratios()
        charts.append(_chart("errors", "Error ratio: share of requests answered 5xx", Unit.RATIO,
                             [Line("5xx share", times, errors)], thresholds.get("errors", ()),
                             chosen, common))
        charts.append(_chart("requests", "Request rate", Unit.PER_SECOND,
                             [Line("all", times, rates.requests), Line("5xx", times, rates.server_errors)],
                             thresholds.get("requests", ()), chosen, common))
        quantiles = latency_quantiles(source, times, window=rate_over, service=name)
        if quantiles:
            lines = [Line(f"p{q * 100:g}", times, values) for q, values in quantiles.items()]
            charts.append(_chart("latency", "Request latency (from its histogram)", Unit.SECONDS,
                                 lines, thresholds.get("latency", ()), chosen, common))
    if not quantiles and any(t.component == name for t in plane.targets):
        charts.append(_checks_chart(plane, name, chosen, start, end, began))
    return ServiceCharts(chosen, tuple(charts), tuple(notes), source is not None)


def _chart(key: str, title: str, unit: Unit, lines: list[Line], thresholds: Sequence[Threshold],
           chosen: ChartRange, common: dict[str, Any]) -> ServiceChart:
    summary = _summary(lines, unit, chosen)
    svg = time_chart(title=f"{title}, last {chosen.words}: {summary}", unit=unit, lines=lines,
                     thresholds=thresholds, **common)
    return ServiceChart(key, title, svg, tuple(line.name for line in lines), summary)


def _checks_chart(plane: LiveState, name: str, chosen: ChartRange, start: float, end: float,
                  began: float | None) -> ServiceChart:
    """Mean probe duration per step, a line per check (or their mean when there are many),
    with a red tick where a run was not OK."""
    targets = [t for t in plane.targets if t.component == name]
    groups = ([(t.name, [t.id]) for t in targets] if len(targets) <= MAX_CHECK_LINES
              else [("all checks", [t.id for t in targets])])
    lines: list[Line] = []
    failed: dict[float, bool] = {}
    for label, ids in groups:
        series = plane.history.series(ids, tier=chosen.tier)
        # each bucket drawn where it ends, as a rate is drawn at the end of its window
        times = [min(b.start.timestamp() + series.width, end) for b in series.buckets]
        lines.append(Line(label, times, series.mean_latencies()))
        for at, bucket in zip(times, series.buckets, strict=True):
            failed[at] = failed.get(at, False) or bucket.failed > 0
    summary = _summary(lines, Unit.SECONDS, chosen)
    title = "Check latency: mean duration of the probes"
    svg = time_chart(title=f"{title}, last {chosen.words}: {summary}", unit=Unit.SECONDS,
                     lines=lines, start=start, end=end, known_from=began,
                     unknown_label="before serve started", failed=sorted(failed.items()))
    return ServiceChart("checks", title, svg, tuple(line.name for line in lines), summary)


def _summary(lines: Sequence[Line], unit: Unit, chosen: ChartRange) -> str:
    """'now 12 ms, highest 40 ms' per line, or that nothing was measured in the range."""
    parts = []
    for line in lines:
        known = [v for v in line.values if v is not None]
        if not known:
            continue
        now = next(v for v in reversed(line.values) if v is not None)
        text = f"now {format_value(now, unit)}, highest {format_value(max(known), unit)}"
        parts.append(f"{line.name} {text}" if len(lines) > 1 else text)
    return "; ".join(parts) if parts else f"nothing measured in the last {chosen.words}"


def _metrics_known_from(end: float, window: float, began: float | None) -> tuple[float, str]:
    """Where a metric chart's data can start, and why there is none before it."""
    kept = end - window
    if began is not None and began > kept:
        return began, "before serve started"
    return kept, f"older than metrics.window ({_words(window)})"


def _words(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"
