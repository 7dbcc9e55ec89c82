"""Deploys in the store: asking for one, reading them, and every change of state as an event.

A deploy's states:

    awaiting_approval ──approvals──▶ queued ──serve──▶ running ──▶ succeeded
                                        │                 │ ▲
                                        │        pause    ▼ │ resume / promote
                                        │               paused
                                        └── abort, a rollback criterion ──▶ rolling_back ──▶ rolled_back

`running` and `rolling_back` are what `serve`'s deploy worker advances; every other state waits
for a person or is final. Only this module writes a deploy's row, and each write records its
event in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsplane.deploy.tables import DeployRow
from opsplane.errors import OpsplaneError
from opsplane.events import service as events

ACTIVE = ("awaiting_approval", "queued", "running", "paused", "rolling_back")
FINAL = ("succeeded", "rolled_back", "failed", "aborted")
ADVANCING = ("running", "rolling_back")


class DeployRefused(OpsplaneError):
    """The deploy cannot be asked for or changed as requested; the message says why."""

    exit_code = 3


class NoSuchDeploy(DeployRefused):
    """No deploy has that id."""


def create(session: Session, *, service: str, environment: str, strategy: str, from_version: str,
           to_version: str, plan: list[dict[str, Any]], params: dict[str, Any], approvals_needed: int,
           actor: str, now: datetime) -> DeployRow:
    """Record a new deploy: queued, or awaiting approval when the environment needs some.
    Refused when the service has a deploy that is not finished."""
    row = DeployRow(service=service, active_service=service, environment=environment, strategy=strategy,
                    from_version=from_version, to_version=to_version,
                    state="awaiting_approval" if approvals_needed else "queued", plan=plan, step=0,
                    extensions=0, percent=0.0, params={**params, "approvals_needed": approvals_needed},
                    approvals=[], verdicts=[], requested_by=actor, reason="", created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        running = active_for(session, service)
        raise DeployRefused(
            f"{service} already has deploy {running.id if running else '?'} "
            f"({running.state if running else 'active'}); wait for it, or `opsplane deploy abort "
            f"{running.id if running else 'ID'}`") from None
    _event(session, row, "deploy.requested", actor, now, details={
        "from": from_version, "to": to_version, "strategy": strategy, "environment": environment,
        "steps": len(plan), **({"override": params["override"]} if params.get("override") else {})})
    return row


def get(session: Session, deploy_id: int) -> DeployRow:
    row = session.get(DeployRow, deploy_id)
    if row is None:
        raise NoSuchDeploy(f"no deploy {deploy_id}; `opsplane deploy history` lists them")
    return row


def active_for(session: Session, service: str) -> DeployRow | None:
    return session.scalar(select(DeployRow).where(DeployRow.active_service == service))


def advancing(session: Session) -> list[DeployRow]:
    """Deploys that `serve` moves forward: queued, running or rolling back."""
    return list(session.scalars(select(DeployRow).where(
        DeployRow.state.in_(("queued", *ADVANCING))).order_by(DeployRow.id)))


def active(session: Session) -> list[DeployRow]:
    """Deploys that are not finished, oldest first."""
    return list(session.scalars(select(DeployRow).where(DeployRow.state.in_(ACTIVE)).order_by(DeployRow.id)))


def succeeded_since(session: Session, since: datetime) -> list[DeployRow]:
    """Deploys that succeeded at or after `since`, newest first."""
    return list(session.scalars(select(DeployRow).where(
        DeployRow.state == "succeeded", DeployRow.ended_at >= since).order_by(DeployRow.id.desc())))


def history(session: Session, service: str | None = None, limit: int = 50) -> list[DeployRow]:
    query = select(DeployRow).order_by(DeployRow.id.desc()).limit(limit)
    if service:
        query = query.where(DeployRow.service == service)
    return list(session.scalars(query))


def approve(session: Session, row: DeployRow, *, actor: str, now: datetime) -> DeployRow:
    if row.state != "awaiting_approval":
        raise DeployRefused(f"deploy {row.id} is {row.state}, not awaiting approval")
    if actor == row.requested_by:
        raise DeployRefused(f"{actor} asked for deploy {row.id}; another person must approve it")
    if any(item["by"] == actor for item in row.approvals):
        raise DeployRefused(f"{actor} already approved deploy {row.id}")
    row.approvals = [*row.approvals, {"by": actor, "at": now.isoformat()}]
    needed = int(row.params.get("approvals_needed", 0))
    _event(session, row, "deploy.approved", actor, now,
           details={"approvals": len(row.approvals), "needed": needed})
    if len(row.approvals) >= needed:
        transition(session, row, "queued", actor=actor, now=now, reason="approved")
    return row


def operate(session: Session, row: DeployRow, what: str, *, actor: str, now: datetime) -> str:
    """An operator's `promote`, `pause`, `resume`, `abort` or `approve` of deploy `row`; the
    sentence that says what it did. DeployRefused when the deploy's state does not allow it."""
    if what == "approve":
        approve(session, row, actor=actor, now=now)
        return f"deploy {row.id}: approved by {actor} ({len(row.approvals)} of " \
               f"{row.params.get('approvals_needed', 0)}); it is {row.state.replace('_', ' ')}"
    if what == "pause":
        _require(row, ("queued", "running"), what)
        transition(session, row, "paused", actor=actor, now=now, reason=f"paused by {actor}")
        return (f"deploy {row.id} paused; requests stay as they are split "
                f"({row.percent:g} % on {row.to_version})")
    if what == "resume":
        _require(row, ("paused",), what)
        transition(session, row, "running", actor=actor, now=now, reason=f"resumed by {actor}")
        return f"deploy {row.id} resumed"
    if what == "promote":
        _require(row, ("running", "paused"), what)
        if current_step(row)["kind"] != "analyse":
            raise DeployRefused(f"deploy {row.id} is not at an analysis step (it is at: "
                                f"{current_step(row)['kind']}); there is nothing to promote")
        step_done(session, row, actor=actor, now=now, details={"promoted_by": actor})
        if row.state == "paused":
            transition(session, row, "running", actor=actor, now=now, reason=f"promoted by {actor}")
        return f"deploy {row.id} promoted to its next step"
    if what == "abort":
        if row.state in ("awaiting_approval", "queued"):
            transition(session, row, "aborted", actor=actor, now=now,
                       reason=f"aborted by {actor} before it began")
            return f"deploy {row.id} aborted; nothing had changed"
        _require(row, ("running", "paused"), what)
        transition(session, row, "rolling_back", actor=actor, now=now, reason=f"aborted by {actor}")
        row.step_started_at = None
        return f"deploy {row.id} is rolling back to {row.from_version}"
    raise DeployRefused(f"unknown operation {what!r}")


def roll_back_service(session: Session, service: str, *, actor: str, now: datetime,
                      proxied: bool, reason: str = "") -> tuple[int, str]:
    """`opsplane rollback SERVICE`: roll back its active deploy, or else undo its last successful
    one with a deploy back to the release before it. (The deploy's id, what was done.)"""
    active = active_for(session, service)
    if active is not None:
        message = operate(session, active, "abort", actor=actor, now=now)
        return active.id, message
    last = session.scalar(select(DeployRow)
                          .where(DeployRow.service == service, DeployRow.state == "succeeded")
                          .order_by(DeployRow.id.desc()).limit(1))
    if last is None:
        raise DeployRefused(f"{service} has no active deploy and no successful one to undo")
    plan = [{"kind": "settle"}, {"kind": "release"}, {"kind": "postcheck"}]
    row = create(session, service=service, environment=last.environment, strategy="rollback",
                 from_version=last.to_version, to_version=last.from_version, plan=plan,
                 params={"proxied": proxied, "undoes": last.id, "rollback": True}, approvals_needed=0,
                 actor=actor, now=now)
    if reason:
        row.reason = reason
    return row.id, f"deploy {row.id}: {service} goes back from {last.to_version} to {last.from_version}"


def _require(row: DeployRow, states: tuple[str, ...], what: str) -> None:
    if row.state not in states:
        raise DeployRefused(f"deploy {row.id} {state_words(row.state)}; {what} needs it "
                            f"{' or '.join(s.replace('_', ' ') for s in states)}")


def state_words(state: str) -> str:
    """A state as the end of a sentence about a deploy: "has succeeded", "is paused"."""
    return {"succeeded": "has succeeded", "rolled_back": "was rolled back", "failed": "has failed",
            "aborted": "was aborted", "awaiting_approval": "awaits approval"}.get(
        state, f"is {state.replace('_', ' ')}")


def transition(session: Session, row: DeployRow, state: str, *, actor: str, now: datetime,
               reason: str = "", details: dict[str, Any] | None = None) -> None:
    """Move `row` to `state`, recording why; a final state frees the service for the next deploy."""
    before = row.state
    row.state = state
    row.updated_at = now
    if reason:
        row.reason = reason
    if state in FINAL:
        row.ended_at = now
        row.active_service = None
    outcome = {"succeeded": "ok", "rolled_back": "rolled_back", "failed": "failed"}.get(state, "ok")
    _event(session, row, f"deploy.{state}", actor, now, outcome=outcome,
           details={"from_state": before, **({"reason": reason} if reason else {}), **(details or {})})


def step_done(session: Session, row: DeployRow, *, actor: str, now: datetime,
              details: dict[str, Any] | None = None) -> None:
    """The current step is done: its event, and the deploy moves to the next one."""
    step = current_step(row)
    _event(session, row, "deploy.step", actor, now, details={
        "step": row.step if row.state != "rolling_back" else f"rollback {rollback_index(row)}",
        "kind": step["kind"], **{k: v for k, v in step.items() if k != "kind"}, **(details or {})})
    if row.state == "rolling_back":
        row.params = {**row.params, "rollback_step": rollback_index(row) + 1}
    else:
        row.step += 1
    row.step_started_at = None
    row.extensions = 0
    row.updated_at = now


def record_verdict(session: Session, row: DeployRow, verdict: dict[str, Any], *, actor: str,
                   now: datetime) -> None:
    row.verdicts = [*row.verdicts, verdict]
    row.updated_at = now
    _event(session, row, "deploy.verdict", actor, now, outcome=str(verdict.get("outcome", "")),
           details=verdict)


def rollback_index(row: DeployRow) -> int:
    return int(row.params.get("rollback_step", 0))


def current_step(row: DeployRow) -> dict[str, Any]:
    from opsplane.deploy.plan import ROLLBACK

    if row.state == "rolling_back":
        return ROLLBACK[min(rollback_index(row), len(ROLLBACK) - 1)]
    return row.plan[min(row.step, len(row.plan) - 1)]


def steps_left(row: DeployRow) -> bool:
    from opsplane.deploy.plan import ROLLBACK

    if row.state == "rolling_back":
        return rollback_index(row) < len(ROLLBACK)
    return row.step < len(row.plan)


def _event(session: Session, row: DeployRow, kind: str, actor: str, now: datetime, *,
           outcome: str = "ok", details: dict[str, Any] | None = None) -> None:
    events.record(session, kind=kind, actor=actor, target=f"deploy:{row.id}", outcome=outcome,
                  service=row.service, ts=now,
                  details={"deploy": row.id, "to": row.to_version, **(details or {})})


def as_dict(row: DeployRow) -> dict[str, Any]:
    from opsplane.deploy.plan import describe

    return {
        "id": row.id, "service": row.service, "environment": row.environment, "strategy": row.strategy,
        "from": row.from_version, "to": row.to_version, "state": row.state, "percent": row.percent,
        "step": row.step, "steps": [{**s, "text": describe(s)} for s in row.plan],
        "params": row.params, "approvals": row.approvals, "verdicts": row.verdicts,
        "requested_by": row.requested_by, "reason": row.reason, "incident": row.incident_id,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }
