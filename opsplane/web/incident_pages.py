"""What the dashboard's incident pages show, read from the store through the incident service.

The functions take a session, the incidents settings and the time, and return plain values for
the templates. Durations are written as the CLI and the post-mortem write them (12m 30s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from opsplane.incidents import postmortem, service
from opsplane.incidents.models import ActionItem, IncidentsSettings, Status, TimelineEntry, ref
from opsplane.incidents.postmortem import span
from opsplane.incidents.report import time_to_acknowledge, time_to_resolve
from opsplane.incidents.tables import IncidentAlertRow, IncidentRow, IncidentUpdateRow
from opsplane.web.runbook_pages import RunLine, run_list

LIST_LIMIT = 100
FILTERS = ("all", "open")
# Timeline kinds grouped into what a responder scans for; the CSS colours each group.
TIMELINE_GROUPS = (("alert.", "alert"), ("notify.", "notify"), ("check.", "check"),
                   ("deploy.", "deploy"), ("runbook.", "runbook"), ("incident.note", "note"),
                   ("incident.acknowledged", "ack"), ("incident.", "incident"))


@dataclass(frozen=True)
class IncidentListRow:
    """One line of the incident list."""

    id: int
    ref: str
    severity: str
    title: str
    service: str
    status: str
    commander: str | None
    started_at: datetime
    is_open: bool
    elapsed: str  # time since it started while open, its duration once resolved
    next_update_at: datetime | None
    overdue: bool


@dataclass(frozen=True)
class Target:
    """Time to acknowledge or to resolve against the severity's target."""

    what: str
    taken: str
    target: str
    verdict: str  # "met", "missed", or "waiting" (not done and still inside the target)


@dataclass(frozen=True)
class IncidentPage:
    """Everything the incident page shows."""

    incident: IncidentListRow
    participants: list[str]
    opened_by: str
    detected_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    root_cause: str
    targets: list[Target]
    update_cadence: str | None
    postmortem_due: datetime | None
    updates: Sequence[IncidentUpdateRow]
    alerts: Sequence[IncidentAlertRow]
    timeline: list[tuple[TimelineEntry, str]]  # each entry with its group
    action_items: list[ActionItem]
    runbook_runs: Sequence[RunLine] = ()  # the runs for this incident, newest first


def list_row(row: IncidentRow, now: datetime) -> IncidentListRow:
    is_open = Status(row.status).is_open
    end = now if is_open or row.resolved_at is None else row.resolved_at
    elapsed = span((end - row.started_at).total_seconds())
    due = row.next_update_at if is_open else None
    return IncidentListRow(
        id=row.id, ref=ref(row.id), severity=row.severity, title=row.title, service=row.service,
        status=row.status, commander=row.commander, started_at=row.started_at, is_open=is_open,
        elapsed=elapsed, next_update_at=due, overdue=due is not None and due <= now,
    )


def incident_list(session: Session, *, now: datetime, open_only: bool,
                  limit: int = LIST_LIMIT) -> list[IncidentListRow]:
    """Open incidents first (most severe, then newest), then the most recent resolved ones."""
    open_rows = sorted(service.get_all(session, open_only=True, limit=limit),
                       key=lambda r: (r.severity, -r.id))
    found = [list_row(r, now) for r in open_rows]
    if not open_only:
        resolved = [r for r in service.get_all(session, limit=limit)
                    if not Status(r.status).is_open]
        found += [list_row(r, now) for r in resolved[:max(limit - len(found), 0)]]
    return found


def judge(what: str, taken: float | None, target: float, waited: float) -> Target:
    """A target met when done within it, missed when done late or still waiting past it."""
    if taken is not None:
        verdict = "met" if taken <= target else "missed"
        shown = span(taken)
    else:
        verdict = "missed" if waited > target else "waiting"
        shown = f"not yet ({span(waited)} so far)"
    return Target(what, shown, span(target), verdict)


def timeline_group(kind: str) -> str:
    return next((group for prefix, group in TIMELINE_GROUPS if kind.startswith(prefix)), "other")


def incident_page(session: Session, *, incident_id: int, settings: IncidentsSettings,
                  now: datetime) -> IncidentPage | None:
    """The incident page's values; None when there is no such incident."""
    row = service.get(session, incident_id=incident_id)
    if row is None:
        return None
    policy = settings.policy(row.severity)
    shown = service.incident_dict(row, settings)
    seen = service.view(row)
    waited = ((row.resolved_at or now) - row.started_at).total_seconds()
    targets = [judge("Time to acknowledge", time_to_acknowledge(seen), policy.response_time, waited),
               judge("Time to resolve", time_to_resolve(seen), policy.resolution_target, waited)]
    due = shown["targets"]["postmortem_due"]
    return IncidentPage(
        incident=list_row(row, now),
        participants=list(row.participants),
        opened_by=row.opened_by,
        detected_at=row.detected_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        root_cause=row.root_cause,
        targets=targets,
        update_cadence=span(policy.update_cadence) if policy.update_cadence else None,
        postmortem_due=datetime.fromisoformat(due) if due else None,
        updates=service.get_updates(session, incident_id=row.id),
        alerts=service.get_alerts(session, incident_id=row.id),
        timeline=[(e, timeline_group(e.kind))
                  for e in service.get_timeline(session, incident_id=row.id, now=now)],
        action_items=service.get_action_items(session, incident_id=row.id),
        runbook_runs=run_list(session, now=now, incident_id=row.id),
    )


def postmortem_draft(session: Session, *, incident_id: int, settings: IncidentsSettings,
                     now: datetime) -> str | None:
    """The post-mortem draft in Markdown, as `opsplane incident postmortem` writes it."""
    if service.get(session, incident_id=incident_id) is None:
        return None
    facts = service.postmortem_facts(session, incident_id=incident_id, settings=settings, now=now)
    return postmortem.render(facts)
