"""The capacity report: each recorded resource's trend, when it crosses its trigger, and what to
do about it. `forecast_resource` and `report` are pure; `capacity_job` reads the store.

A resource is over its trigger now when the mean of its last hour is (the manual's "sustained");
otherwise the chosen fit (forecast.choose) says when it gets there. Crossing within
`critical_within` (7 days) is critical, within `warn_within` (30 days) a warning, later within
the horizon only noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from opsplane.capacity import forecast
from opsplane.capacity.models import CapacitySettings
from opsplane.capacity.readings import kind_of, threshold_of
from opsplane.reports.models import Finding, Report
from opsplane.timefmt import span_words

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from opsplane.reports.jobs import JobEnv

JOB = "capacity-report"
SUSTAINED = 3600.0
Status = Literal["over", "critical", "warning", "later", "ok", "learning", "unknown"]

ADVICE = {
    "cpu": "add instances (`opsplane scale`) or cores before CPU stays above the trigger",
    "memory": "add memory, or instances to spread the load",
    "disk": "grow the filesystem, or archive and clean up what it holds",
    "dir": "raise the directory's quota, or archive and clean up what it holds",
    "db_pool": "raise the pool size, or put a pooler (PgBouncer) in front of the database",
    "requests": "load-test at the forecast rate (`opsplane loadtest`) and add instances",
}
LABELS = {"cpu": "CPU", "memory": "memory", "disk": "disk", "dir": "directory", "db_pool": "database pool",
          "requests": "request rate"}


@dataclass(frozen=True)
class ResourceForecast:
    resource: str
    points: tuple[forecast.Point, ...]
    threshold: float | None
    now: float
    current: float | None
    choice: forecast.Choice | None
    crosses_at: float | None
    status: Status

    @property
    def kind(self) -> str:
        return kind_of(self.resource)

    @property
    def label(self) -> str:
        kind, _, subject = self.resource.partition(":")
        return f"{LABELS.get(kind, kind)} {subject}".strip()

    @property
    def ratio(self) -> bool:
        return self.kind != "requests"

    def shown(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value * 100:.1f}%" if self.ratio else f"{value:.1f}/s"

    def time_to_threshold(self) -> float | None:
        return None if self.crosses_at is None else max(0.0, self.crosses_at - self.now)

    def sentence(self) -> str:
        trigger = self.shown(self.threshold)
        if self.status == "unknown":
            return f"{len(self.points)} recordings: not enough history to forecast"
        if self.status == "learning":
            span = self.points[-1][0] - self.points[0][0]
            return (f"{self.shown(self.current)} now; {span_words(span)} of history: a trend is forecast "
                    "once the history covers capacity.min_history")
        if self.status == "over":
            return (f"{self.shown(self.current)} over the last hour, above its trigger {trigger}: "
                    f"{ADVICE.get(self.kind, 'scale it')}")
        assert self.choice is not None
        trend = f"{self.choice.fit.kind} trend {self.shown(forecast.growth_per_day(self.choice.fit))} a day"
        if self.crosses_at is None:
            if self.threshold is None:
                return f"{self.shown(self.current)} now, {trend}"
            return f"{self.shown(self.current)} now, {trend}: not at {trigger} within the horizon"
        return (f"{self.shown(self.current)} now, {trend}: reaches {trigger} in "
                f"{days(self.time_to_threshold())} "
                f"({datetime.fromtimestamp(self.crosses_at, UTC):%Y-%m-%d %H:%M} UTC); "
                f"{ADVICE.get(self.kind, 'scale it')}")

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "label": self.label, "status": self.status,
                "threshold": self.threshold, "current": self.current, "recordings": len(self.points),
                "fit": None if self.choice is None else self.choice.fit.kind,
                "why": None if self.choice is None else self.choice.reason,
                "holdout_errors": None if self.choice is None else self.choice.errors,
                "growth_per_day": None if self.choice is None else forecast.growth_per_day(self.choice.fit),
                "crosses_at": None if self.crosses_at is None else
                datetime.fromtimestamp(self.crosses_at, UTC).isoformat(),
                "seconds_to_threshold": self.time_to_threshold(), "advice": ADVICE.get(self.kind)}


def days(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def forecast_resource(resource: str, points: Sequence[forecast.Point], *, threshold: float | None, now: float,
                      settings: CapacitySettings) -> ResourceForecast:
    """One resource's trend and its time to `threshold` from its recorded points."""
    points = tuple(forecast.finite(sorted(points)))
    recent = [v for t, v in points if t >= now - SUSTAINED]
    current = sum(recent) / len(recent) if recent else (points[-1][1] if points else None)
    if len(points) < forecast.MIN_POINTS:
        return ResourceForecast(resource, points, threshold, now, current, None, None, "unknown")
    choice = forecast.choose(points)
    if threshold is not None and current is not None and current >= threshold:
        return ResourceForecast(resource, points, threshold, now, current, choice, now, "over")
    if points[-1][0] - points[0][0] < settings.min_history:
        # a few minutes' slope is noise, and part of a day's swing is not growth: no forecast yet
        return ResourceForecast(resource, points, threshold, now, current, None, None, "learning")
    crosses = None if threshold is None else forecast.crossing(choice.fit, threshold, now=now,
                                                               horizon=settings.horizon)
    status: Status = "ok"
    if crosses is not None:
        ahead = crosses - now
        status = ("critical" if ahead <= settings.critical_within
                  else "warning" if ahead <= settings.warn_within else "later")
    return ResourceForecast(resource, points, threshold, now, current, choice, crosses, status)


SEVERITY = {"over": "critical", "critical": "critical", "warning": "warning", "later": "info",
            "learning": "info", "unknown": "info"}


def report(forecasts: Sequence[ResourceForecast], *, subject: str = "platform") -> Report:
    findings = tuple(Finding(SEVERITY[f.status], f.resource, f.sentence(), f.as_dict())  # type: ignore[arg-type]
                     for f in forecasts if f.status in SEVERITY)
    soon = [f for f in forecasts if f.status in ("over", "critical", "warning")]
    if not forecasts:
        summary = "nothing recorded yet: `serve` records each resource with a capacity: section"
    elif soon:
        summary = (f"{len(soon)} of {len(forecasts)} resources need scaling: "
                   + ", ".join(f"{f.label} ({'now' if f.status == 'over' else days(f.time_to_threshold())})"
                               for f in soon))
    else:
        summary = f"no trigger crossed within the warning span for {len(forecasts)} resources"
    lines = ["# Capacity", "", "| resource | now | trigger | fit | time to trigger | status |",
             "|---|---|---|---|---|---|"]
    for f in forecasts:
        fit = f.choice.fit.kind if f.choice else "-"
        lines.append(f"| {f.label} | {f.shown(f.current)} | {f.shown(f.threshold)} | {fit} | "
                     f"{days(f.time_to_threshold())} | {f.status} |")
    lines += ["", "Which fit and why:", ""]
    lines += [f"- {f.label}: {f.choice.reason}" for f in forecasts if f.choice]
    return Report(job=JOB, subject=subject, summary=summary, findings=findings,
                  body={"resources": [f.as_dict() for f in forecasts]}, markdown="\n".join(lines) + "\n")


def forecasts(session: Session, settings: CapacitySettings, *, now: datetime) -> list[ResourceForecast]:
    """Every recorded resource's forecast from the store."""
    from opsplane.capacity import service

    return [forecast_resource(name, service.history(session, name, now=now),
                              threshold=threshold_of(name, settings.thresholds), now=now.timestamp(),
                              settings=settings)
            for name in service.resources(session)]


def capacity_job(env: JobEnv) -> Report | None:
    """The scheduled job `capacity-report` (monthly, and the weekly check): None without a
    `capacity:` section, since nothing is recorded then."""
    settings = env.inventory.capacity
    if settings is None:
        return None
    with env.store.session() as session:
        return report(forecasts(session, settings, now=env.clock.now()))
