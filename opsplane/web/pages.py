"""What each dashboard page shows, computed from the control plane's state.

The functions here take the plane (latest results, probe history, scraped samples) and
return plain values for the templates: no request, no HTML beyond the SVG charts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from markupsafe import Markup

from opsplane.events.summary import describe
from opsplane.health.history import Series
from opsplane.health.models import ProbeResult, State
from opsplane.health.status import ComponentStatus, assess
from opsplane.links import web_link
from opsplane.metrics.scrape import ScrapeStatus
from opsplane.timefmt import span_words
from opsplane.units import Unit, format_value
from opsplane.web.charts import GraphNode, dependency_graph, sparkline
from opsplane.web.service_charts import (
    ChartRange,
    RequestRates,
    ServiceCharts,
    default_range,
    rate_window,
    request_rates,
    service_charts,
    steps,
)

if TYPE_CHECKING:
    from opsplane.events.tables import Event
    from opsplane.live import LiveState


# --- words for numbers ----------------------------------------------------------------------


def age_text(now: datetime, then: datetime | None) -> str:
    """'4 s ago', '3 min ago', '2 h ago' - how long since `then`."""
    if then is None:
        return "never"
    seconds = max((now - then).total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


# --- sparklines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """A sparkline and the sentence that says what it shows (also its accessible name)."""

    svg: Markup
    summary: str


def latency_chart(series: Series, *, width: int = 120, height: int = 28) -> Chart:
    """Mean probe duration per bucket, with a tick under each bucket that had a failed run."""
    means = series.mean_latencies()
    known = [m for m in means if m is not None]
    if not known:
        summary = f"no probe results in the last {span_words(series.width * len(series.buckets))}"
    else:
        summary = (f"latency now {format_value(known[-1], Unit.SECONDS)}, "
                   f"highest {format_value(max(known), Unit.SECONDS)}; "
                   f"not OK in {series.failing_buckets} of {len(series.buckets)} steps of "
                   f"{span_words(series.width)}")
    marks = [b.failed > 0 for b in series.buckets]
    return Chart(sparkline(means, label=summary, marks=marks, width=width, height=height), summary)


def rate_chart(rates: RequestRates, *, width: int = 120, height: int = 28) -> Chart:
    """Requests per second at each step, with a tick under each step that served 5xx."""
    known = [r for r in rates.requests if r is not None]
    if not known:
        summary = "no request rate yet (needs a few scrapes)"
    else:
        errors = next((e for e in reversed(rates.server_errors) if e is not None), None)
        summary = (f"requests now {format_value(rates.latest, Unit.PER_SECOND)}, "
                   f"peak {format_value(max(known), Unit.PER_SECOND)}, "
                   f"5xx now {format_value(errors, Unit.PER_SECOND)}")
    marks = [bool(e) for e in rates.server_errors]
    return Chart(sparkline(list(rates.requests), label=summary, marks=marks, width=width,
                           height=height), summary)


def overview_rates(plane: LiveState, spark: ChartRange) -> dict[str, RequestRates]:
    """The request rates of every scraped component over `spark`, from the sample store in
    one range query."""
    source = plane.scraper.locked_source()
    if source is None or not plane.scraper.components:
        return {}
    times = steps(plane.clock.now().timestamp(), spark.seconds, spark.step)
    window = rate_window(spark.step, plane.inventory.defaults.interval)
    return request_rates(source, times, window=window)


# --- overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentRow:
    """One line of the overview; its sparklines cover `span` ("15 min" or "1 h")."""

    status: ComponentStatus
    latency: Chart
    requests: Chart | None
    scrape: ScrapeStatus | None
    scraped: bool
    span: str

    @property
    def shown_state(self) -> State | None:
        return self.status.state if self.status.checked else None


def checks_by_component(plane: LiveState) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for target in plane.targets:
        found.setdefault(target.component, []).append(target.id)
    return found


def overview(plane: LiveState) -> list[ComponentRow]:
    """Every component of the inventory, in inventory order, with sparklines of the last hour
    (of the last 15 minutes while `serve` is younger than that, so they are not empty)."""
    checks = checks_by_component(plane)
    scraped = plane.scraper.components
    spark = default_range(plane.started_at, plane.clock.now())
    rates = overview_rates(plane, spark)
    times = steps(plane.clock.now().timestamp(), spark.seconds, spark.step)
    nothing = RequestRates(tuple(times), (None,) * len(times), (None,) * len(times))
    rows = []
    for status in assess(plane.inventory, plane.latest):
        is_scraped = status.name in scraped
        rows.append(ComponentRow(
            status=status,
            latency=latency_chart(plane.history.series(checks.get(status.name, []), tier=spark.tier)),
            requests=rate_chart(rates.get(status.name, nothing)) if is_scraped else None,
            scrape=plane.scraper.status(status.name),
            scraped=is_scraped,
            span=spark.words,
        ))
    return rows


def state_counts(rows: Iterable[ComponentRow]) -> list[tuple[str, str, int]]:
    """(label, css state, count) for the summary line, worst first, zero counts left out."""
    counts: dict[State | None, int] = {}
    for row in rows:
        counts[row.shown_state] = counts.get(row.shown_state, 0) + 1
    order: list[State | None] = [State.CRITICAL, State.UNKNOWN, State.WARNING, State.OK, None]
    return [(state.value if state else "not checked", state.value.lower() if state else "none",
             counts[state]) for state in order if counts.get(state)]


# --- one service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRow:
    name: str
    type: str
    address: str
    interval: float
    result: ProbeResult | None
    checked_at: datetime | None
    since: datetime | None
    latency: Chart


@dataclass(frozen=True)
class Neighbour:
    name: str
    state: State | None


@dataclass(frozen=True)
class ServiceDetail:
    status: ComponentStatus
    description: str | None
    runbook: str | None
    runbook_is_link: bool
    checks: list[CheckRow]
    depends_on: list[Neighbour]
    dependants: list[Neighbour]
    charts: ServiceCharts
    scrape: ScrapeStatus | None
    metrics_path: str | None


def service_detail(plane: LiveState, name: str, chosen: ChartRange | None = None) -> ServiceDetail | None:
    """What the service page shows about `name`, its charts over `chosen` (by default the
    range that suits how long `serve` has run); None when the inventory has no such component."""
    statuses = {s.name: s for s in assess(plane.inventory, plane.latest)}
    status = statuses.get(name)
    if status is None:
        return None
    component = plane.inventory.component(name)
    shown = chosen or default_range(plane.started_at, plane.clock.now())

    def neighbour(other: str) -> Neighbour:
        found = statuses.get(other)
        return Neighbour(other, found.state if found and found.checked else None)

    checks = [
        CheckRow(
            name=t.name, type=t.type, address=t.address, interval=t.interval,
            result=plane.latest.get(t.id), checked_at=plane.checked_at.get(t.id),
            since=plane.since(t.id),
            latency=latency_chart(plane.history.series([t.id], tier=shown.tier), width=160),
        )
        for t in plane.targets if t.component == name
    ]
    dependants = [other for _, other, c in plane.inventory.components() if name in c.depends_on]
    runbook = component.runbook
    return ServiceDetail(
        status=status,
        description=component.description,
        runbook=runbook,
        runbook_is_link=web_link(runbook) is not None,
        checks=checks,
        depends_on=[neighbour(d) for d in component.depends_on],
        dependants=[neighbour(d) for d in dependants],
        charts=service_charts(plane, name, shown),
        scrape=plane.scraper.status(name),
        metrics_path=component.metrics_path,
    )


# --- dependencies ---------------------------------------------------------------------------


def dependency_view(plane: LiveState) -> Markup:
    """The dependency graph SVG, boxes coloured (and labelled) by each component's state."""
    nodes = [GraphNode(s.name, s.state if s.checked else None, s.impacted)
             for s in assess(plane.inventory, plane.latest)]
    graph = {name: list(c.depends_on) for _, name, c in plane.inventory.components()}
    return dependency_graph(nodes, graph, link=lambda n: f"/ui/services/{n}")


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    id: int
    ts: datetime
    kind: str
    service: str | None
    target: str
    outcome: str
    actor: str
    summary: str
    state: State | None


def event_rows(events: Sequence[Event]) -> list[EventRow]:
    """The events as the list shows them, each summarised in a line a person reads."""
    return [EventRow(e.id, e.ts, e.kind, e.service, e.target, e.outcome, e.actor,
                     summarise(e), _state(e.outcome)) for e in events]


def summarise(event: Event) -> str:
    """'Check http of orders: OK \u2192 CRITICAL: refuses connections', 'Alert HighErrorRate firing
    at 1.9% (env=production, service=orders): ...': the line the event list shows, the same
    as the incident timeline's and `opsplane events`' (opsplane/events/summary.py)."""
    return describe(event)


def _state(outcome: str) -> State | None:
    try:
        return State(outcome)
    except ValueError:
        return None
