"""Runbook runs in the store: starting one, the record of each step, waiting for people,
approvals, the end; every change a `runbook.*` event in the same transaction.

A run's states:

    running ──▶ waiting (a person must answer, or say whether a step cut short happened)
       │   ──▶ awaiting_approval ──approve──▶ waiting (resume goes on)
       └──▶ succeeded | failed | aborted

Events of a run for an incident name the incident first in their target (`INC-7/runbook-run:3`),
which is how they join the incident's timeline whatever service they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.auth.service import Role
from opsplane.errors import OpsplaneError
from opsplane.events import service as events
from opsplane.runbooks.engine import StepRecord
from opsplane.runbooks.models import Runbook
from opsplane.runbooks.tables import RunbookRunRow, RunbookStepRow

ACTIVE = ("running", "waiting", "awaiting_approval")
FINAL = ("succeeded", "failed", "aborted")
OUTPUT_KEPT = 4000  # characters of a step's output the row keeps (the end, where errors are)
OUTPUT_SAID = 300  # characters of it the event carries


class RunRefused(OpsplaneError):
    """The run cannot be started or changed as asked; the message says why."""

    exit_code = 3


class NoSuchRun(RunRefused):
    """No run has that id."""


class NotAllowed(RunRefused):
    """The person's role falls short of what the step needs."""


def run_claim(run_id: int) -> str:
    """The key of the claim held by whoever drives run `run_id`."""
    return f"runbook-run:{run_id}"


def target(run: RunbookRunRow) -> str:
    """The events' target: the run, under its incident when it has one."""
    own = f"runbook-run:{run.id}"
    return f"INC-{run.incident_id}/{own}" if run.incident_id is not None else own


def create(session: Session, *, runbook: Runbook, parameters: dict[str, str], incident_id: int | None,
           requested_by: str, mode: str, now: datetime) -> RunbookRunRow:
    """Record a new run of `runbook` (already filled with `parameters`) and its start."""
    run = RunbookRunRow(runbook=runbook.name, title=runbook.title,
                        definition=runbook.model_dump(mode="json", by_alias=True, exclude_none=True),
                        parameters=dict(parameters), incident_id=incident_id, requested_by=requested_by,
                        mode=mode, state="running", current_step=runbook.steps[0].id, waiting_for="",
                        reason="", started_at=now, updated_at=now)
    session.add(run)
    session.flush()
    _event(session, run, "runbook.started", requested_by, now, details={
        "title": runbook.title, "mode": mode, "parameters": dict(parameters), "steps": len(runbook.steps)})
    return run


def get(session: Session, run_id: int) -> RunbookRunRow:
    run = session.get(RunbookRunRow, run_id)
    if run is None:
        raise NoSuchRun(f"no runbook run {run_id}; `opsplane runbook runs` lists them")
    return run


def get_all(session: Session, *, limit: int = 50, incident_id: int | None = None,
            runbook: str | None = None) -> list[RunbookRunRow]:
    """Runs, newest first; only those for `incident_id`, or of `runbook`, when given."""
    query = select(RunbookRunRow).order_by(RunbookRunRow.id.desc()).limit(limit)
    if incident_id is not None:
        query = query.where(RunbookRunRow.incident_id == incident_id)
    if runbook is not None:
        query = query.where(RunbookRunRow.runbook == runbook)
    return list(session.scalars(query))


def steps(session: Session, run_id: int) -> list[RunbookStepRow]:
    """Every attempt of every step of the run, in the order they began."""
    return list(session.scalars(select(RunbookStepRow).where(RunbookStepRow.run_id == run_id)
                                .order_by(RunbookStepRow.id)))


def record(rows: Sequence[RunbookStepRow]) -> list[StepRecord]:
    """The rows as the engine reads them."""
    return [StepRecord(r.step_id, r.attempt, r.state, r.outcome, r.started_at, r.ended_at) for r in rows]


def runbook_of(run: RunbookRunRow) -> Runbook:
    """The runbook as it was when the run began."""
    return Runbook.model_validate(run.definition)


def start_step(session: Session, run: RunbookRunRow, *, step: Any, attempt: int, holder: str,
               confirmed_by: str | None, now: datetime) -> RunbookStepRow:
    """Mark attempt `attempt` of `step` started, before it acts."""
    row = RunbookStepRow(run_id=run.id, step_id=step.id, kind=step.kind, attempt=attempt, state="started",
                         outcome=None, output="", holder=holder, confirmed_by=confirmed_by, started_at=now)
    session.add(row)
    run.state, run.current_step, run.waiting_for, run.updated_at = "running", step.id, "", now
    session.flush()
    return row


def finish_step(session: Session, run: RunbookRunRow, row: RunbookStepRow, *, outcome: str, output: str,
                actor: str, now: datetime, approved_by: str | None = None,
                confirmed_by: str | None = None) -> None:
    """Mark the attempt done with its outcome and what it printed; its `runbook.step` event."""
    row.state, row.outcome, row.ended_at = "done", outcome, now
    row.output = output[-OUTPUT_KEPT:]
    if approved_by:
        row.approved_by = approved_by
    if confirmed_by:
        row.confirmed_by = confirmed_by
    run.updated_at = now
    said = output.strip()
    details: dict[str, Any] = {"step": row.step_id, "kind": row.kind, "attempt": row.attempt,
                               "outcome": outcome,
                               "seconds": round((now - row.started_at).total_seconds(), 3)}
    if said:
        details["output"] = said if len(said) <= OUTPUT_SAID else "…" + said[-OUTPUT_SAID:]
    for key, value in (("confirmed_by", row.confirmed_by), ("approved_by", row.approved_by)):
        if value:
            details[key] = value
    _event(session, run, "runbook.step", actor, now, outcome=outcome, details=details)


def answer(session: Session, run: RunbookRunRow, *, step: Any, attempt: int, outcome: str, by: str,
           output: str, now: datetime) -> RunbookStepRow:
    """A step that is a person's answer (a confirmation; a no to an unsafe step): started and
    done at once."""
    row = start_step(session, run, step=step, attempt=attempt, holder=by, confirmed_by=by, now=now)
    finish_step(session, run, row, outcome=outcome, output=output, actor=by, now=now)
    return row


def wait(session: Session, run: RunbookRunRow, *, step_id: str, why: str, actor: str, now: datetime,
         approval: bool = False) -> None:
    """The run stops until a person acts; one `runbook.waiting` event per stop."""
    state = "awaiting_approval" if approval else "waiting"
    if (run.state, run.current_step, run.waiting_for) == (state, step_id, why):
        return
    run.state, run.current_step, run.waiting_for, run.updated_at = state, step_id, why, now
    _event(session, run, "runbook.waiting", actor, now, outcome="waiting",
           details={"step": step_id, "why": why})


def approve(session: Session, run: RunbookRunRow, *, step_id: str, actor: str, role: Role,
            now: datetime) -> RunbookStepRow:
    """A second person approves the step the run waits at; refused to the requester, to a
    role short of the step's, and for a step the run does not wait at."""
    runbook = runbook_of(run)
    try:
        step = runbook.step(step_id)
    except KeyError:
        raise RunRefused(f"run {run.id} ({run.runbook}) has no step {step_id!r}") from None
    if step.kind != "approve":
        raise RunRefused(f"step {step_id} of run {run.id} is a {step.kind} step, not an approval")
    if run.state != "awaiting_approval" or run.current_step != step_id:
        raise RunRefused(f"run {run.id} is {run.state.replace('_', ' ')}"
                         + (f" at step {run.current_step}" if run.current_step else "")
                         + f", not awaiting approval of {step_id}")
    if _person(actor) == _person(run.requested_by):
        raise RunRefused(f"{actor} started run {run.id}; another person must approve step {step_id}")
    needed = Role(step.role)
    if not role.allows(needed):
        raise NotAllowed(f"step {step_id} needs the {needed.value} role to approve; {actor} has {role.value}")
    attempt = 1 + max((r.attempt for r in steps(session, run.id) if r.step_id == step_id), default=0)
    row = start_step(session, run, step=step, attempt=attempt, holder=actor, confirmed_by=None, now=now)
    finish_step(session, run, row, outcome="yes", output=f"approved by {actor}", actor=actor, now=now,
                approved_by=actor)
    _event(session, run, "runbook.approved", actor, now, details={"step": step_id, "role": needed.value})
    wait(session, run, step_id=step_id, why=f"approved by {actor}: resume to go on", actor=actor, now=now)
    return row


def _person(actor: str) -> str:
    """Who an actor is, whichever way they came (cli:ana, token:ana)."""
    return actor.split(":", 1)[-1].strip().lower()


def finish(session: Session, run: RunbookRunRow, *, state: str, reason: str, actor: str,
           now: datetime) -> None:
    """The run is over: its state and why, and `runbook.finished`."""
    if run.state in FINAL:
        return
    run.state, run.reason, run.waiting_for, run.updated_at, run.ended_at = state, reason, "", now, now
    outcome = {"succeeded": "ok"}.get(state, state)
    _event(session, run, "runbook.finished", actor, now, outcome=outcome,
           details={"state": state, "reason": reason})


def abort(session: Session, run: RunbookRunRow, *, actor: str, now: datetime, reason: str = "") -> None:
    if run.state in FINAL:
        raise RunRefused(f"run {run.id} has already ended ({run.state})")
    finish(session, run, state="aborted", reason=reason or f"aborted by {actor}", actor=actor, now=now)


def loop_verdict(session: Session, run: RunbookRunRow, *, recovered: bool, said: str, actor: str,
                 now: datetime) -> None:
    """The closed loop's word on a run for an incident once its steps are done:
    `runbook.recovered` (the alerts resolved and the checks pass: `said` what was seen) or
    `runbook.escalated` (a person must take over: `said` why)."""
    kind = "runbook.recovered" if recovered else "runbook.escalated"
    _event(session, run, kind, actor, now, outcome="ok" if recovered else "escalated",
           details={"state": run.state, ("seen" if recovered else "reason"): said})


def service_of(run: RunbookRunRow) -> str | None:
    """The component the run is about: its `service` parameter (or the one naming a service)."""
    if "service" in run.parameters:
        return str(run.parameters["service"])
    kinds = {name: p.get("of") for name, p in run.definition.get("parameters", {}).items()}
    for name, of in kinds.items():
        if of in ("service", "database", "cache", "component") and name in run.parameters:
            return str(run.parameters[name])
    return None


def _event(session: Session, run: RunbookRunRow, kind: str, actor: str, now: datetime, *,
           outcome: str = "ok", details: dict[str, Any] | None = None) -> None:
    base: dict[str, Any] = {"run": run.id, "runbook": run.runbook}
    if run.incident_id is not None:
        base["incident"] = run.incident_id
    events.record(session, kind=kind, actor=actor, target=target(run), outcome=outcome,
                  service=service_of(run), ts=now, details={**base, **(details or {})})


def as_dict(run: RunbookRunRow, rows: Sequence[RunbookStepRow] | None = None) -> dict[str, Any]:
    """A run for `--json` and the API, with its steps when given."""
    found: dict[str, Any] = {
        "id": run.id, "runbook": run.runbook, "title": run.title, "parameters": run.parameters,
        "incident": run.incident_id, "requested_by": run.requested_by, "mode": run.mode, "state": run.state,
        "current_step": run.current_step, "waiting_for": run.waiting_for, "reason": run.reason,
        "started_at": run.started_at.isoformat(), "updated_at": run.updated_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }
    if rows is not None:
        found["steps"] = [step_dict(r) for r in rows]
    return found


def step_dict(row: RunbookStepRow) -> dict[str, Any]:
    return {"step": row.step_id, "kind": row.kind, "attempt": row.attempt, "state": row.state,
            "outcome": row.outcome, "output": row.output, "confirmed_by": row.confirmed_by,
            "approved_by": row.approved_by, "started_at": row.started_at.isoformat(),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None}
