"""The monthly SLO review: for each SLO over one calendar month, the objective and what was
achieved, the share of the month's error budget used, the worst days, and the incidents and
deploys of its service in that month, read from the store's hour rows, incidents and deploys.

A month is taken in the SLO's own time zone when its window is a calendar one, else in UTC. The
hours are summed whole: an hour starting in the month belongs to it (an SLO in a zone whose
offset is not whole hours has its first and last half hours counted by the hour they start in).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.errors import UsageError
from opsplane.slo import budget
from opsplane.slo.budget import BudgetWindow, Counts
from opsplane.slo.models import Slo

WORST_DAYS = 3


@dataclass(frozen=True)
class DayFigure:
    day: str  # YYYY-MM-DD in the SLO's zone
    sli: float | None
    bad: float  # bad events, or bad slices for a time-sliced SLO


@dataclass(frozen=True)
class SloMonth:
    name: str
    service: str
    objective: float
    start: datetime
    end: datetime
    counts: Counts
    achieved: float | None
    budget_used: float | None
    met: bool | None
    worst_days: list[DayFigure] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    deploys: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "service": self.service, "objective": self.objective,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "events": self.counts.total,
                "good": self.counts.good, "bad_slices": self.counts.bad_slices, "achieved": self.achieved,
                "budget_used": self.budget_used, "met": self.met,
                "worst_days": [{"day": d.day, "sli": d.sli, "bad": d.bad} for d in self.worst_days],
                "incidents": self.incidents, "deploys": self.deploys}


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) from YYYY-MM; a usage error otherwise."""
    try:
        year, month = (int(part) for part in text.split("-"))
        datetime(year, month, 1)
    except ValueError:
        raise UsageError(f"cannot read month {text!r}: give it as YYYY-MM, e.g. 2026-11") from None
    return year, month


def last_month(now: datetime) -> str:
    """The month before `now`'s (UTC), as YYYY-MM: the review's default, the last whole month."""
    first = now.astimezone(UTC).replace(day=1)
    year, month = (first.year, first.month - 1) if first.month > 1 else (first.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def month_bounds(slo: Slo, year: int, month: int) -> tuple[datetime, datetime, str]:
    """The month's start and end in UTC, and the zone it was taken in."""
    zone = slo.calendar.timezone if slo.calendar is not None else "UTC"
    start = datetime(year, month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return start, budget.next_period("month", zone, start), zone


def month_report(session: Session, slos: Mapping[str, Slo], *, year: int, month: int) -> list[SloMonth]:
    """The review of every SLO for `month` of `year`, in the inventory's order."""
    from opsplane.deploy.tables import DeployRow
    from opsplane.incidents.tables import IncidentRow
    from opsplane.slo.service import hours

    found = []
    for name, slo in slos.items():
        start, end, zone = month_bounds(slo, year, month)
        tz = ZoneInfo(zone)
        rows = hours(session, name=name, start=start, end=end)
        counts = Counts()
        days: dict[str, Counts] = defaultdict(Counts)
        for row in rows:
            got = Counts(row.good, row.total, row.slices, row.bad_slices)
            counts += got
            days[row.at.astimezone(tz).date().isoformat()] += got
        window = BudgetWindow(start, end, (end - start).total_seconds())
        achieved = budget.sli(slo, counts, window)
        used = budget.budget_consumed(slo, counts, window)
        worst = sorted((_day(slo, day, got) for day, got in days.items()), key=lambda d: (-d.bad, d.day))
        incidents = session.scalars(select(IncidentRow).where(
            IncidentRow.service == slo.service, IncidentRow.started_at >= start, IncidentRow.started_at < end)
            .order_by(IncidentRow.started_at))
        deploys = session.scalars(select(DeployRow).where(
            DeployRow.service == slo.service, DeployRow.created_at >= start, DeployRow.created_at < end)
            .order_by(DeployRow.created_at))
        found.append(SloMonth(
            name, slo.service, slo.objective, start, end, counts, achieved, used,
            None if achieved is None else achieved >= slo.objective - 1e-12,
            [d for d in worst if d.bad > 0][:WORST_DAYS],
            [{"id": i.id, "title": i.title, "severity": i.severity, "status": i.status,
              "started_at": i.started_at.isoformat(),
              "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None} for i in incidents],
            [{"id": d.id, "from": d.from_version, "to": d.to_version, "state": d.state,
              "strategy": d.strategy, "at": d.created_at.isoformat()} for d in deploys]))
    return found


def _day(slo: Slo, day: str, got: Counts) -> DayFigure:
    if slo.budgeting == "timeslices":
        slices = 86400.0 / slo.timeslice
        return DayFigure(day, 1.0 - got.bad_slices / slices, float(got.bad_slices))
    return DayFigure(day, got.good / got.total if got.total else None, got.bad)


def markdown(months: list[SloMonth], *, year: int, month: int) -> str:
    """The review as a Markdown page, for the monthly meeting's notes."""
    lines = [f"# SLO review {year:04d}-{month:02d}", "",
             "| SLO | service | objective | achieved | budget used | met |", "|---|---|---|---|---|---|"]
    for m in months:
        lines.append(f"| {m.name} | {m.service} | {_pct(m.objective)} | {_pct(m.achieved)} | "
                     f"{'—' if m.budget_used is None else f'{m.budget_used:.0%}'} | "
                     f"{'—' if m.met is None else 'yes' if m.met else '**no**'} |")
    for m in months:
        lines += ["", f"## {m.name}", ""]
        if m.worst_days:
            lines.append("Worst days: " + ", ".join(f"{d.day} ({_pct(d.sli)}, {d.bad:g} bad)"
                                                    for d in m.worst_days) + ".")
        else:
            lines.append("No bad events recorded this month.")
        lines.append("")
        lines.append(f"Incidents on {m.service}: " + (", ".join(
            f"#{i['id']} {i['severity']} {i['title']}" for i in m.incidents) or "none") + ".")
        lines.append(f"Deploys of {m.service}: " + (", ".join(
            f"#{d['id']} {d['from']} → {d['to']} ({d['state']})" for d in m.deploys) or "none") + ".")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.3f}".rstrip("0").rstrip(".") + " %"
