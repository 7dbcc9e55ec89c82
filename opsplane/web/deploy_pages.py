"""What the dashboard's deploy pages show, read from the store through the deploy service.

The functions take a session (and, for the charts, the control plane's read side) and return
plain values for the templates: the deploy list, one deploy's split, steps, verdicts, events
and the operator actions its state allows. Measured values are written in their units
(`opsplane.units.format_value`), as `opsplane deploy status` and the analysis write them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.deploy import service
from opsplane.deploy.models import DeploySettings
from opsplane.deploy.plan import ROLLBACK, describe
from opsplane.deploy.tables import DeployRow
from opsplane.events import service as events
from opsplane.timefmt import span
from opsplane.units import Unit, format_value
from opsplane.web.pages import EventRow, event_rows

if TYPE_CHECKING:
    from opsplane.live import LiveState
    from opsplane.web.service_charts import ServiceChart

LIST_LIMIT = 100
EVENT_LIMIT = 500
CHART_POINTS = 60
CHART_MARGIN = 60.0  # seconds drawn before a deploy began and after it ended
# The colour of each state's badge (its name is always written in it): moving on, waiting for
# a person or a rollback, ended well, ended badly, dropped.
TONES = {"queued": "moving", "running": "moving", "awaiting_approval": "waiting", "paused": "waiting",
         "rolling_back": "waiting", "succeeded": "good", "rolled_back": "bad", "failed": "bad",
         "aborted": "none"}


@dataclass(frozen=True)
class Action:
    """An operator's button on the deploy page: the route's last part, its label, what it does."""

    name: str
    label: str
    does: str


@dataclass(frozen=True)
class DeployListRow:
    """One line of the deploy list, and the head of a deploy's page."""

    id: int
    service: str
    environment: str
    from_version: str
    to_version: str
    strategy: str
    state: str
    new_share: float  # the share of requests the new release answers now, in %
    requested_by: str
    created_at: datetime
    ended_at: datetime | None
    reason: str
    incident_id: int | None
    is_active: bool
    elapsed: str  # how long it has run so far, or how long it ran

    @property
    def state_words(self) -> str:
        return self.state.replace("_", " ")

    @property
    def tone(self) -> str:
        return TONES.get(self.state, "none")


@dataclass(frozen=True)
class StepLine:
    """One step of the plan (or of the rollback) with its mark: done, now, or neither."""

    number: int
    kind: str
    text: str
    mark: str  # "done", "now", "stopped" (where a rollback or an abort cut it off), or ""
    note: str = ""  # for a step that watches, how long it has and how long it may take


@dataclass(frozen=True)
class Split:
    """How requests are split now, and what the last shift proved on live answers."""

    stable: str
    new: str
    new_percent: float
    answers: tuple[tuple[str, int], ...]  # (release, answers) of the proving requests
    failed: int
    proven_at: datetime | None
    proven_percent: float | None  # the share the last shift gave the new release

    @property
    def stable_percent(self) -> float:
        return 100.0 - self.new_percent

    @property
    def proven(self) -> int:
        return sum(count for _, count in self.answers) + self.failed


@dataclass(frozen=True)
class MetricLine:
    """One metric of a verdict, each value written in its unit."""

    name: str
    outcome: str
    stable: str
    canary: str
    p_value: str
    effect: str
    samples: str
    reason: str


@dataclass(frozen=True)
class VerdictView:
    """One analysis verdict: the step it judged, its outcome and its table of metrics."""

    percent: float
    at: datetime | None
    outcome: str
    look: str  # "look 3", "final look"
    decisive: bool
    intervals: int
    figures: str  # error ratio and p95 of both releases, requests counted
    reason: str
    metrics: tuple[MetricLine, ...]


@dataclass(frozen=True)
class DeployPage:
    """Everything a deploy's page shows but its charts."""

    deploy: DeployListRow
    proxied: bool
    split: Split
    steps: tuple[StepLine, ...]
    rollback: tuple[StepLine, ...]  # the undoing steps, once a rollback began
    verdicts: tuple[VerdictView, ...]  # newest first
    approvals: tuple[str, ...]
    approvals_needed: int
    override: str | None
    undoes: int | None  # the deploy a `rollback` deploy undoes
    events: list[EventRow]
    actions: tuple[Action, ...]


# --- the list -------------------------------------------------------------------------------


def new_share(row: DeployRow) -> float:
    """The share of requests, in %, that the new release answers now: what the proxy gives its
    extra instances, or the part of the service's own instances that already run it."""
    if row.state == "succeeded":
        return 100.0
    if row.state in ("rolled_back", "aborted", "rolling_back"):
        return row.percent
    done = row.plan[:row.step]
    if any(step["kind"] == "settle" for step in done):
        return 100.0
    replaced = sum(step["kind"] == "replace" for step in done)
    instances = sum(step["kind"] == "replace" for step in row.plan)
    if instances and not row.params.get("proxied"):
        return 100.0 * replaced / instances
    return row.percent


def list_row(row: DeployRow, now: datetime) -> DeployListRow:
    is_active = row.state in service.ACTIVE
    end = row.ended_at if row.ended_at is not None and not is_active else now
    return DeployListRow(
        id=row.id, service=row.service, environment=row.environment, from_version=row.from_version,
        to_version=row.to_version, strategy=row.strategy, state=row.state, new_share=new_share(row),
        requested_by=row.requested_by, created_at=row.created_at, ended_at=row.ended_at,
        reason=row.reason, incident_id=row.incident_id, is_active=is_active,
        elapsed=span(max((end - row.created_at).total_seconds(), 0.0)),
    )


def deploy_list(session: Session, *, now: datetime, service_name: str | None = None,
                limit: int = LIST_LIMIT) -> list[DeployListRow]:
    """Deploys that are not finished first, newest first, then the most recent finished ones;
    only `service_name`'s when given."""
    query = select(DeployRow).where(DeployRow.state.in_(service.ACTIVE)).order_by(DeployRow.id.desc())
    if service_name:
        query = query.where(DeployRow.service == service_name)
    active = list(session.scalars(query))
    finished = [row for row in service.history(session, service_name, limit)
                if row.state not in service.ACTIVE]
    return [list_row(row, now) for row in [*active, *finished][:max(limit, len(active))]]


# --- one deploy -----------------------------------------------------------------------------


def deploy_page(session: Session, *, deploy_id: int, now: datetime,
                settings: DeploySettings | None = None) -> DeployPage | None:
    """The deploy page's values; None when there is no such deploy. `settings` (the inventory's
    `deploy:`) say how long an analysis step may take."""
    row = session.get(DeployRow, deploy_id)
    if row is None:
        return None
    until = row.ended_at + timedelta(seconds=1) if row.ended_at is not None else None  # later deploys' out
    found = [e for e in events.get_all(session, service=row.service, kind="deploy.*",
                                       since=row.created_at, until=until, limit=EVENT_LIMIT)
             if e.target == f"deploy:{row.id}"]
    shifts = [e for e in found if e.kind == "deploy.step" and (e.details or {}).get("kind") == "shift"]
    override = row.params.get("override")
    return DeployPage(
        deploy=list_row(row, now),
        proxied=bool(row.params.get("proxied")),
        split=split_of(row, shifts[0].details if shifts else None, shifts[0].ts if shifts else None),
        steps=step_lines(row, now=now, settings=settings or DeploySettings()),
        rollback=rollback_lines(row),
        verdicts=tuple(verdict_view(v) for v in reversed(row.verdicts)),
        approvals=tuple(str(a.get("by", "?")) for a in row.approvals),
        approvals_needed=int(row.params.get("approvals_needed", 0)),
        override=str(override.get("reason")) if isinstance(override, dict) else None,
        undoes=row.params.get("undoes"),
        events=event_rows(found),
        actions=actions(row),
    )


def split_of(row: DeployRow, shift: Mapping[str, Any] | None, at: datetime | None) -> Split:
    """The split now, with the answers that the last shift's proving requests got (`shift`:
    that step's event details, whose `split` is {"answers": {release: count}, "failed": n})."""
    proof = (shift or {}).get("split") or {}
    answers = {str(k): int(v) for k, v in (proof.get("answers") or {}).items()}
    order = [row.from_version, row.to_version, *sorted(set(answers) - {row.from_version, row.to_version})]
    percent = (shift or {}).get("percent")
    return Split(stable=row.from_version, new=row.to_version, new_percent=new_share(row),
                 answers=tuple((release, answers[release]) for release in order if release in answers),
                 failed=int(proof.get("failed") or 0), proven_at=at if proof else None,
                 proven_percent=float(percent) if isinstance(percent, int | float) and proof else None)


def step_lines(row: DeployRow, *, now: datetime, settings: DeploySettings) -> tuple[StepLine, ...]:
    """The plan's steps: those done marked done, the one a running or paused deploy is at
    marked now (with how long it has watched, when it watches), and the one a rollback cut off
    marked stopped."""
    at = {"running": "now", "paused": "now", "rolling_back": "stopped", "rolled_back": "stopped",
          "failed": "stopped"}.get(row.state, "")
    lines = []
    for number, step in enumerate(row.plan):
        mark = "done" if number < row.step else at if number == row.step else ""
        note = watching(row, step, now, settings) if mark == "now" else ""
        lines.append(StepLine(number + 1, step["kind"], describe(step), mark, note))
    return tuple(lines)


def watching(row: DeployRow, step: Mapping[str, Any], now: datetime, settings: DeploySettings) -> str:
    """How long the current step has watched and how long it may still take: an analysis
    until its verdict is due (each extension adds a step duration), a hold until it ends."""
    if row.step_started_at is None or step["kind"] not in ("analyse", "hold"):
        return ""
    watched = max((now - row.step_started_at).total_seconds(), 0.0)
    if step["kind"] == "hold":
        return f"for {span(watched)} of {span(float(step['seconds']))}"
    lasts = settings.canary.step_duration * (1 + row.extensions)
    times = f"{row.extensions} time{'s' if row.extensions != 1 else ''}"
    extended = f", extended {times}" if row.extensions else ""
    if watched >= lasts:
        return f"for {span(watched)}; its verdict is due now{extended}"
    return f"for {span(watched)}; a verdict is due within {span(lasts - watched)}{extended}"


def rollback_lines(row: DeployRow) -> tuple[StepLine, ...]:
    """The rollback's steps once one began: done, now while it runs, stopped where it failed."""
    if row.state not in ("rolling_back", "rolled_back", "failed"):
        return ()
    at = service.rollback_index(row)
    mark = {"rolling_back": "now", "failed": "stopped"}.get(row.state, "done")
    return tuple(StepLine(number + 1, step["kind"], describe(step),
                          "done" if number < at else mark if number == at else "")
                 for number, step in enumerate(ROLLBACK))


def actions(row: DeployRow) -> tuple[Action, ...]:
    """What an operator may do to `row` in its state, as `deploy.service.operate` allows it."""
    found = []
    if row.state == "awaiting_approval":
        needed = int(row.params.get("approvals_needed", 0))
        found.append(Action("approve", "Approve", f"{len(row.approvals)} of {needed} approvals so far; "
                            f"not by {row.requested_by}, who asked for it"))
    if row.state in ("running", "paused") and service.current_step(row)["kind"] == "analyse":
        found.append(Action("promote", "Promote", "go on to the next step now, whatever the analysis "
                            "says so far"))
    if row.state in ("queued", "running"):
        found.append(Action("pause", "Pause", "stop advancing; requests stay split as they are"))
    if row.state == "paused":
        found.append(Action("resume", "Resume", "advance the deploy again"))
    if row.state in ("awaiting_approval", "queued"):
        found.append(Action("abort", "Abort", "drop the deploy; nothing has changed yet"))
    elif row.state in ("running", "paused"):
        found.append(Action("abort", "Abort and roll back",
                            f"requests back to {row.from_version}, the new instances stopped"))
    return tuple(found)


# --- verdicts -------------------------------------------------------------------------------


def verdict_view(verdict: Mapping[str, Any]) -> VerdictView:
    """A stored verdict (`analysis.Verdict.as_dict` with the step's percent and time) as the
    page shows it; a figure it lacks reads '-'."""
    at = verdict.get("at")
    final = bool(verdict.get("final"))
    stable_n, canary_n = _number(verdict.get("stable_requests")), _number(verdict.get("canary_requests"))
    figures = (f"error ratio {_value(verdict.get('stable_error_ratio'), Unit.RATIO)} stable vs "
               f"{_value(verdict.get('canary_error_ratio'), Unit.RATIO)} new, p95 "
               f"{_value(verdict.get('stable_p95'), Unit.SECONDS)} vs "
               f"{_value(verdict.get('canary_p95'), Unit.SECONDS)}, {_count(stable_n)} and "
               f"{_count(canary_n)} requests")
    return VerdictView(
        percent=_number(verdict.get("percent")),
        at=datetime.fromisoformat(at) if isinstance(at, str) else None,
        outcome=str(verdict.get("outcome", "?")),
        look="final look" if final else f"look {verdict.get('look', '?')}",
        decisive=bool(verdict.get("decisive")),
        intervals=int(verdict.get("intervals") or 0),
        figures=figures,
        reason=str(verdict.get("reason", "")),
        metrics=tuple(metric_line(m) for m in verdict.get("metrics", ()) if isinstance(m, Mapping)),
    )


def metric_line(metric: Mapping[str, Any]) -> MetricLine:
    """One metric of a verdict (`analysis.MetricResult.as_dict`), its values in its unit."""
    unit = metric.get("unit") or Unit.RATIO
    p_value = metric.get("p_value")
    return MetricLine(
        name=str(metric.get("name", "?")),
        outcome=str(metric.get("outcome", "?")),
        stable=_value(metric.get("stable_value"), unit),
        canary=_value(metric.get("canary_value"), unit),
        p_value="-" if p_value is None else f"{float(p_value):.2g}",
        effect=effect_text(metric.get("effect", "difference"), metric.get("effect_size")),
        samples=f"{_count(_number(metric.get('stable_samples')))} / "
                f"{_count(_number(metric.get('canary_samples')))}",
        reason=str(metric.get("reason", "")),
    )


def effect_text(kind: str, size: float | None) -> str:
    """'+1.2 points' for a difference of ratios, 'P(slower) 0.61' or 'ratio 2.1' otherwise."""
    if size is None or not math.isfinite(size):
        return "-"
    if kind == "difference":
        return f"{size * 100:+.3g} points"
    return f"{kind} {size:.3g}"


def _value(value: Any, unit: Any) -> str:
    return format_value(float(value) if isinstance(value, int | float) else None, unit)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _count(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


# --- charts ---------------------------------------------------------------------------------


def deploy_charts(plane: LiveState, deploy: DeployListRow) -> tuple[tuple[ServiceChart, ...], str | None]:
    """Each release's request rate and p95 from shortly before the deploy began until it ended
    (or now), from the samples `serve` scrapes, split by their `version` label; and a note when
    there is nothing to draw, saying why."""
    from opsplane.deploy.collect import OWN_ROUTES
    from opsplane.metrics.promql import range_query
    from opsplane.web.linechart import time_chart
    from opsplane.web.service_charts import ServiceChart, rate_window, steps

    scraped = plane.inventory.component(deploy.service).metrics_path is not None
    source = plane.scraper.locked_source() if scraped else None
    if source is None:
        return (), (f"{deploy.service} is not scraped (no metrics_path), so there is no chart of its "
                    "releases' requests.")
    now = plane.clock.now().timestamp()
    window = plane.inventory.metrics.window
    end = min(now, deploy.ended_at.timestamp() + CHART_MARGIN) if deploy.ended_at else now
    start = deploy.created_at.timestamp() - CHART_MARGIN
    kept_from = now - window
    if end <= kept_from:
        return (), (f"The samples of this deploy's time are gone: they are kept for "
                    f"{span(window)} (metrics.window).")
    step = float(max(1, math.ceil((end - start) / CHART_POINTS)))  # whole seconds: PromQL steps in ms
    times = steps(float(math.floor(end)), end - start, step)
    interval = next((t.interval for t in plane.scraper.targets if t.component == deploy.service),
                    plane.inventory.defaults.interval)
    over = f"{max(1, round(rate_window(step, interval) * 1000))}ms"
    matchers = f'service={_quoted(deploy.service)},route!~"{OWN_ROUTES}"'
    rates = range_query(f"sum by (version) (rate(http_requests_total{{{matchers}}}[{over}]))",
                        source, times[0], times[-1], step)
    p95 = range_query(f"histogram_quantile(0.95, sum by (version, le) "
                      f"(rate(http_request_duration_seconds_bucket{{{matchers}}}[{over}])))",
                      source, times[0], times[-1], step)
    releases = {deploy.from_version: f"{deploy.from_version} (stable)",
                deploy.to_version: f"{deploy.to_version} (new)"}
    began = plane.started_at.timestamp() if plane.started_at else None
    known_from = max(kept_from, began) if began is not None else kept_from
    charts = []
    for key, title, unit, found in (("release-requests", "Requests per release", Unit.PER_SECOND, rates),
                                    ("release-p95", "p95 latency per release", Unit.SECONDS, p95)):
        lines = _release_lines(found.series, times, releases)
        summary = _chart_summary(lines, unit)
        svg = time_chart(title=f"{title}: {summary}", unit=unit, start=start, end=end, lines=lines,
                         known_from=known_from, unknown_label="not watched then")
        charts.append(ServiceChart(key, title, svg, tuple(line.name for line in lines), summary))
    return tuple(charts), None


def _release_lines(series: Sequence[tuple[Any, Sequence[tuple[float, float]]]], times: Sequence[float],
                   releases: Mapping[str, str]) -> list[Any]:
    """A line per release of the deploy (stable first), its values placed at `times`."""
    from opsplane.web.linechart import Line

    step = times[1] - times[0] if len(times) > 1 else 1.0
    values: dict[str, list[float | None]] = {release: [None] * len(times) for release in releases}
    for labels, samples in series:
        release = dict(labels).get("version")
        if release not in values:
            continue
        for at, value in samples:
            n = round((at - times[0]) / step)  # the engine's times are whole milliseconds
            if 0 <= n < len(times) and math.isfinite(value):
                values[release][n] = value
    return [Line(releases[release], times, values[release]) for release in releases]


def _chart_summary(lines: Sequence[Any], unit: Unit) -> str:
    parts = []
    for line in lines:
        known = [v for v in line.values if v is not None]
        if known:
            last = next(v for v in reversed(line.values) if v is not None)
            parts.append(f"{line.name} last {format_value(last, unit)}, "
                         f"highest {format_value(max(known), unit)}")
    return "; ".join(parts) if parts else "nothing measured"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
