"""Reports in the store: a finished run kept with a `report.saved` event, the history, one report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.reports.models import Report
from opsplane.reports.tables import ReportRow

FINDINGS_IN_EVENT = 5  # the event names the worst few; the report holds them all


class NoSuchReport(UsageError):
    """No report has that id."""


def save(session: Session, report: Report, *, trigger: str, requested_by: str, slot: datetime | None,
         started_at: datetime, now: datetime) -> ReportRow:
    """Keep `report` and record `report.saved` with its outcome, counts and worst findings."""
    order = {"critical": 0, "warning": 1, "info": 2}
    worst = sorted(report.findings, key=lambda f: order[f.severity])[:FINDINGS_IN_EVENT]
    row = ReportRow(job=report.job, subject=report.subject[:200], slot=slot, trigger=trigger,
                    requested_by=requested_by, outcome=report.outcome, summary=report.summary,
                    counts=report.counts(), findings=[f.as_dict() for f in report.findings],
                    body=report.body, markdown=report.markdown, started_at=started_at, ended_at=now)
    session.add(row)
    session.flush()
    events.record(session, kind="report.saved", actor=requested_by, target=f"report:{report.job}",
                  outcome=report.outcome, service=None, ts=now, details={
                      "job": report.job, "report": row.id, "subject": report.subject,
                      "summary": report.summary, "trigger": trigger,
                      "slot": slot.isoformat() if slot else None, **report.counts(),
                      "worst": [f"{f.severity}: {f.subject}: {f.what}"
                                for f in worst if f.severity != "info"]})
    return row


def get(session: Session, report_id: int) -> ReportRow:
    row = session.get(ReportRow, report_id)
    if row is None:
        raise NoSuchReport(f"no report {report_id}; `opsplane report list` lists them")
    return row


def history(session: Session, *, job: str | None = None, limit: int = 30) -> list[ReportRow]:
    """Reports, newest first."""
    query = select(ReportRow).order_by(ReportRow.id.desc()).limit(limit)
    if job is not None:
        query = query.where(ReportRow.job == job)
    return list(session.scalars(query))


def latest(session: Session, job: str) -> ReportRow | None:
    """The newest report of `job`."""
    return session.scalars(select(ReportRow).where(ReportRow.job == job)
                           .order_by(ReportRow.id.desc()).limit(1)).first()


def as_dict(row: ReportRow, *, full: bool = False) -> dict[str, Any]:
    """A report for `--json` and the API; `full` adds its findings, body and Markdown."""
    out: dict[str, Any] = {
        "id": row.id, "job": row.job, "subject": row.subject, "trigger": row.trigger,
        "slot": row.slot.isoformat() if row.slot else None, "requested_by": row.requested_by,
        "outcome": row.outcome, "summary": row.summary, "counts": dict(row.counts),
        "started_at": row.started_at.isoformat(), "ended_at": row.ended_at.isoformat()}
    if full:
        out.update(findings=list(row.findings), body=dict(row.body), markdown=row.markdown)
    return out
