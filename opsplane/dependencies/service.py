"""Dependency findings in the store: an audit's results reconciled with what was open, every
new finding a `deps.found` event and every one no longer reported a `deps.fixed` event.

A finding is a (service, ecosystem, package, vulnerability); seen again, it keeps its first
sighting and so its due time (which moves only if the advisory's severity changes, to first
seen plus the new severity's fix time). Only an audit that ran closes findings: a service whose
audit failed keeps them open, so an unreachable mirror never reads as a fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.dependencies.flows import Audited
from opsplane.dependencies.models import FixTimes
from opsplane.dependencies.severity import LEVELS, due
from opsplane.dependencies.tables import DependencyFindingRow
from opsplane.events import service as events
from opsplane.timefmt import span_words


@dataclass
class Changes:
    """What one reconciliation did: rows opened, still open, fixed."""

    found: list[DependencyFindingRow] = field(default_factory=list)
    still: list[DependencyFindingRow] = field(default_factory=list)
    fixed: list[DependencyFindingRow] = field(default_factory=list)


def open_findings(session: Session, services: Iterable[str] = ()) -> list[DependencyFindingRow]:
    """The open findings (of `services`, all when empty), most urgent first."""
    query = select(DependencyFindingRow).where(DependencyFindingRow.state == "open")
    names = list(services)
    if names:
        query = query.where(DependencyFindingRow.service.in_(names))
    rows = list(session.scalars(query))
    return sorted(rows, key=urgency)


def urgency(row: DependencyFindingRow) -> tuple[Any, ...]:
    """Due first (earliest first), then by severity; low findings, which have no due time, last."""
    return (row.due_at is None, row.due_at or row.first_seen, LEVELS.index(row.severity)  # type: ignore[arg-type]
            if row.severity in LEVELS else 9, row.service, row.package, row.vuln_id)


def history(session: Session, *, limit: int = 200) -> list[DependencyFindingRow]:
    """Every finding, open and fixed, newest first."""
    return list(session.scalars(select(DependencyFindingRow).order_by(DependencyFindingRow.id.desc())
                                .limit(limit)))


def _details(row: DependencyFindingRow) -> dict[str, Any]:
    return {"finding": row.id, "service": row.service, "ecosystem": row.ecosystem, "package": row.package,
            "version": row.version, "vuln": row.vuln_id, "aliases": list(row.aliases),
            "severity": row.severity, "cvss": row.cvss_score, "fix_versions": list(row.fix_versions),
            "due_at": row.due_at.isoformat() if row.due_at else None}


def reconcile(session: Session, audited: Audited, *, now: datetime, times: FixTimes,
              actor: str = "opsplane") -> Changes:
    """Fold one service's audit of one ecosystem into its findings. An audit that failed
    changes nothing."""
    changes = Changes()
    if audited.error is not None:
        return changes
    query = select(DependencyFindingRow).where(
        DependencyFindingRow.state == "open", DependencyFindingRow.service == audited.service,
        DependencyFindingRow.ecosystem == audited.ecosystem)
    open_rows = {(r.package, r.vuln_id): r for r in session.scalars(query)}
    for reported, rating in audited.found:
        key = (reported.package, reported.vuln_id)
        row = open_rows.pop(key, None)
        new = row is None
        if row is None:
            row = DependencyFindingRow(
                service=audited.service, ecosystem=audited.ecosystem, package=reported.package,
                vuln_id=reported.vuln_id, first_seen=now, state="open")
            changes.found.append(row)
        else:
            changes.still.append(row)
        row.version = reported.version[:100]
        row.aliases = list(reported.aliases)
        row.summary = reported.summary
        row.cvss_score, row.cvss_vector = rating.score, rating.vector
        row.severity, row.rated_by = rating.severity, rating.source
        row.fix_versions = list(reported.fix_versions)
        row.last_seen = now
        row.due_at = due(row.first_seen, rating.severity, times)
        if new:
            session.add(row)
            session.flush()
            events.record(session, kind="deps.found", actor=actor, target=f"service:{audited.service}",
                          outcome=row.severity, service=audited.service, ts=now, details=_details(row))
    for row in open_rows.values():
        row.state, row.fixed_at = "fixed", now
        changes.fixed.append(row)
        events.record(session, kind="deps.fixed", actor=actor, target=f"service:{audited.service}",
                      outcome="ok", service=audited.service, ts=now, details={
                          **_details(row), "open_for": (now - row.first_seen).total_seconds(),
                          "late": bool(row.due_at is not None and now > row.due_at)})
    return changes


def overdue(row: DependencyFindingRow, now: datetime) -> bool:
    return row.state == "open" and row.due_at is not None and now > row.due_at


def as_dict(row: DependencyFindingRow, now: datetime) -> dict[str, Any]:
    """A finding for `--json` and reports: with whether it is overdue and how long it has left."""
    left = (row.due_at - now).total_seconds() if row.due_at is not None and row.state == "open" else None
    return {
        "id": row.id, "service": row.service, "ecosystem": row.ecosystem, "package": row.package,
        "version": row.version, "vuln_id": row.vuln_id, "aliases": list(row.aliases), "summary": row.summary,
        "cvss_score": row.cvss_score, "cvss_vector": row.cvss_vector, "severity": row.severity,
        "rated_by": row.rated_by, "fix_versions": list(row.fix_versions), "state": row.state,
        "first_seen": row.first_seen.isoformat(), "last_seen": row.last_seen.isoformat(),
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "fixed_at": row.fixed_at.isoformat() if row.fixed_at else None,
        "overdue": overdue(row, now), "seconds_left": left,
    }


def due_words(row: DependencyFindingRow, now: datetime) -> str:
    """When it is due, as a person reads it: overdue by, due in, or the next release."""
    if row.state != "open":
        return f"fixed {row.fixed_at:%Y-%m-%d %H:%M}" if row.fixed_at else "fixed"
    if row.due_at is None:
        return "next release"
    if now > row.due_at:
        return f"overdue by {span_words((now - row.due_at).total_seconds())}"
    return f"due in {span_words((row.due_at - now).total_seconds())}"
