"""Checklist runs in the store: a run begun (its runbook run made), its end with the count of
items ok, warned and failed and a `checklist.ran` event, and the history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.checklists.tables import ChecklistRunRow
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.runbooks import service as runs
from opsplane.runbooks.engine import latest
from opsplane.runbooks.models import Runbook
from opsplane.runbooks.tables import RunbookStepRow

# An item's judgement from its step's outcome; notes are shown, not counted.
JUDGED = {"ok": "ok", "warned": "warned", "failed": "failed", "timed_out": "failed"}


class NoSuchChecklistRun(UsageError):
    """No checklist run has that id."""


def begin(session: Session, *, runbook: Runbook, trigger: str, requested_by: str, slot: datetime | None,
          now: datetime) -> ChecklistRunRow:
    """A new checklist run and the runbook run behind it (mode auto: every item is safe)."""
    run = runs.create(session, runbook=runbook, parameters={}, incident_id=None, requested_by=requested_by,
                      mode="auto", now=now)
    row = ChecklistRunRow(checklist=runbook.name, run_id=run.id, slot=slot, trigger=trigger,
                          requested_by=requested_by, state="running", ok=0, warned=0, failed=0, items=[],
                          started_at=now)
    session.add(row)
    session.flush()
    return row


def items(rows: Sequence[RunbookStepRow]) -> list[dict[str, Any]]:
    """Each item's last attempt, in the order they ran: step, kind, outcome, what it found."""
    last = latest(runs.record(rows))
    return [{"step": r.step_id, "kind": r.kind, "outcome": r.outcome, "output": r.output}
            for r in rows if last[r.step_id].attempt == r.attempt]


def finish(session: Session, row: ChecklistRunRow, *, actor: str, now: datetime) -> ChecklistRunRow:
    """Count the items of the finished run and record `checklist.ran`."""
    found = items(runs.steps(session, row.run_id))
    judged = [(i["step"], JUDGED.get(i["outcome"] or "", "failed")) for i in found if i["kind"] != "note"]
    run = runs.get(session, row.run_id)
    if run.state not in ("succeeded",):  # the run itself did not end well: that is a failed item too
        judged.append(("run", "failed"))
    row.ok = sum(1 for _, j in judged if j == "ok")
    row.warned = sum(1 for _, j in judged if j == "warned")
    row.failed = sum(1 for _, j in judged if j == "failed")
    row.items = [{"step": step, "outcome": j} for step, j in judged if j != "ok"]
    row.state = "failed" if row.failed else "warned" if row.warned else "ok"
    row.ended_at = now
    outcome = {"ok": "ok", "warned": "warning"}.get(row.state, "failed")
    events.record(session, kind="checklist.ran", actor=actor, target=f"checklist:{row.checklist}",
                  outcome=outcome, service=None, ts=now, details={
                      "checklist": row.checklist, "checklist_run": row.id, "run": row.run_id,
                      "trigger": row.trigger, "slot": row.slot.isoformat() if row.slot else None,
                      "ok": row.ok, "warned": row.warned, "failed": row.failed, "items": list(row.items)})
    return row


def get(session: Session, run_id: int) -> ChecklistRunRow:
    row = session.get(ChecklistRunRow, run_id)
    if row is None:
        raise NoSuchChecklistRun(f"no checklist run {run_id}; `opsplane checklist history` lists them")
    return row


def history(session: Session, *, checklist: str | None = None, limit: int = 30) -> list[ChecklistRunRow]:
    """Checklist runs, newest first."""
    query = select(ChecklistRunRow).order_by(ChecklistRunRow.id.desc()).limit(limit)
    if checklist is not None:
        query = query.where(ChecklistRunRow.checklist == checklist)
    return list(session.scalars(query))


def as_dict(row: ChecklistRunRow, found: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A checklist run for `--json` and the API, with its items when given."""
    out: dict[str, Any] = {
        "id": row.id, "checklist": row.checklist, "run": row.run_id, "trigger": row.trigger,
        "slot": row.slot.isoformat() if row.slot else None, "requested_by": row.requested_by,
        "state": row.state, "ok": row.ok, "warned": row.warned, "failed": row.failed,
        "not_ok": list(row.items), "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None}
    if found is not None:
        out["items"] = found
    return out


def exit_code(state: str) -> int:
    """0 every item ok, 1 an item warned, 2 an item failed (or the run is not over)."""
    return {"ok": 0, "warned": 1}.get(state, 2)
