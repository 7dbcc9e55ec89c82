"""What the capacity page shows: each recorded resource's use over what the store kept, its
forecast drawn ahead to its trigger (or a while past now), the fit chosen and why, the time to
the trigger and the advice; and the last KPI report. Pure over the store's rows and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from opsplane.capacity.models import CapacitySettings
from opsplane.capacity.report import ADVICE, ResourceForecast, days, forecasts
from opsplane.timefmt import span_words
from opsplane.units import Unit
from opsplane.web.linechart import Line, Threshold, time_chart

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DAY = 86400.0
STEPS_AHEAD = 120
STATE_CLASSES = {"over": "state-critical", "critical": "state-critical", "warning": "state-warning",
                 "later": "state-ok", "ok": "state-ok", "learning": "state-unknown",
                 "unknown": "state-unknown"}


@dataclass(frozen=True)
class ResourceView:
    forecast: ResourceForecast
    chart: Markup
    ahead: float

    @property
    def state_class(self) -> str:
        return STATE_CLASSES[self.forecast.status]

    @property
    def time_to_trigger(self) -> str:
        f = self.forecast
        if f.threshold is None:
            return "no trigger"
        if f.status == "over":
            return "over it now"
        if f.choice is None:  # learning or too few recordings: no forecast is made yet
            span = f.points[-1][0] - f.points[0][0] if f.points else 0.0
            return f"not forecast yet ({span_words(span)} of history)"
        if f.crosses_at is None:
            return "not within the horizon"
        return days(f.time_to_threshold())

    @property
    def advice(self) -> str:
        return ADVICE.get(self.forecast.kind, "")


def ahead_of(f: ResourceForecast) -> float:
    """How far past now the chart draws: to a little past the crossing, else half the history,
    at least a day and at most thirty; nothing while no forecast is made (the history alone)."""
    span = f.points[-1][0] - f.points[0][0] if f.points else 0.0
    if f.choice is None:
        return 0.0
    wanted = (f.crosses_at - f.now) * 1.2 if f.crosses_at is not None and f.crosses_at > f.now else span / 2
    return min(30 * DAY, max(DAY, wanted))


def chart(f: ResourceForecast) -> tuple[Markup, float]:
    ahead = ahead_of(f)
    unit = Unit.RATIO if f.ratio else Unit.PER_SECOND
    start = f.points[0][0] if f.points else f.now - DAY
    end = max(f.now + ahead, start + 60.0)  # one recording still gets a minute of axis
    past = [t for t, _ in f.points]
    future = [f.now + ahead * (n + 1) / STEPS_AHEAD for n in range(STEPS_AHEAD)] if ahead else []
    times = past + future
    used: list[float | None] = [v for _, v in f.points] + [None] * len(future)
    lines = [Line("use", times, used)]
    if f.choice is not None:
        fit = f.choice.fit
        drawn: list[float | None] = [None] * len(past) + [fit.at(t) for t in future]
        if past:
            drawn[len(past) - 1] = fit.at(past[-1])
        lines.append(Line(f"{fit.kind} forecast", times, drawn))
    thresholds = ([Threshold(f.threshold, f"trigger {f.shown(f.threshold)}")]
                  if f.threshold is not None else [])
    return time_chart(title=f"{f.label}: use and forecast", unit=unit, start=start, end=end, lines=lines,
                      thresholds=thresholds), ahead


def resource_views(session: Session, settings: CapacitySettings, *, now: datetime) -> list[ResourceView]:
    views = []
    for f in forecasts(session, settings, now=now):
        drawn, ahead = chart(f)
        views.append(ResourceView(f, drawn, ahead))
    return views


def last_kpis(session: Session) -> dict[str, Any] | None:
    """The newest stored KPI report, as `report show --json` has it."""
    from opsplane.capacity.kpi import JOB
    from opsplane.reports import service

    row = service.latest(session, JOB)
    return None if row is None else service.as_dict(row, full=True)
