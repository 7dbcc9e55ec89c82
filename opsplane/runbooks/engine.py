"""A run as a pure state machine: from the runbook and the record of its steps so far, what
happens next. No I/O, no clock of its own: `now` is given.

The record is every attempt of every step: started (claimed, not yet done) or done with an
outcome. The engine walks the runbook from its first step along the outcomes recorded, and
stops at the first step that is not done:

- never started: run it, or first ask a person (a confirmation, an unsafe step, the typed
  name a cache flush needs) or wait for an approval;
- started but not done (the process died in the middle of it): checks, queries, waits and
  notes run again; a command or action runs again only when it says it is `idempotent`,
  else a person must say whether it happened ("no step done twice");
- a `wait_until` that found its condition not yet true: look again `every` seconds until its
  `timeout` from the first look; the look at the deadline decides between ok and timed_out.

A `decide` step's way on is the branch for the outcome of the step it names; `skipped` when
that step never ran on the path taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsplane.runbooks.models import ABORT, CHANGES, CONTINUE, END, FAIL, Runbook

NOT_YET = "not_yet"  # a wait_until look that found its condition false before the deadline
NOT_RUN = "not_run"  # an attempt cut short that a person says did not happen: the step runs again


@dataclass(frozen=True)
class StepRecord:
    """One attempt of one step, as the store keeps it."""

    step_id: str
    attempt: int
    state: str  # started | done
    outcome: str | None
    started_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class RunStep:
    """Run attempt `attempt` of the step now."""

    step_id: str
    attempt: int


@dataclass(frozen=True)
class AskPerson:
    """A person must answer before the run goes on: `confirm` (the step's own yes/no),
    `unsafe` (may this step run?), `typed` (type the cache's name to flush it), `unknown_outcome`
    (the step was started and the process died: did it happen?)."""

    step_id: str
    attempt: int
    why: str


@dataclass(frozen=True)
class AwaitApproval:
    """A second person with `role` must approve the step."""

    step_id: str
    role: str


@dataclass(frozen=True)
class Sleep:
    """Nothing to do until `until`; then look again (a wait_until's next look)."""

    step_id: str
    until: datetime


@dataclass(frozen=True)
class Finish:
    """The run is over: succeeded, failed or aborted, and why."""

    state: str
    reason: str


Next = RunStep | AskPerson | AwaitApproval | Sleep | Finish


def latest(record: Sequence[StepRecord]) -> dict[str, StepRecord]:
    """Each step's last attempt."""
    found: dict[str, StepRecord] = {}
    for item in record:
        if item.step_id not in found or item.attempt > found[item.step_id].attempt:
            found[item.step_id] = item
    return found


def next_move(runbook: Runbook, record: Sequence[StepRecord], *, now: datetime) -> Next:
    """What the run does next, given every attempt recorded so far."""
    last = latest(record)
    step_id = runbook.steps[0].id
    passed: set[str] = set()
    while True:
        if step_id == END:
            return Finish("succeeded", "every step done")
        step = runbook.step(step_id)
        if step_id in passed:  # the loader refuses cycles; a record that makes one is not followed
            return Finish("failed", f"step {step_id} was reached twice")
        passed.add(step_id)
        done = last.get(step_id)
        if done is None:
            return _gate(step, 1)
        if done.state != "done":
            if step.kind in CHANGES and not step.idempotent:
                return AskPerson(step_id, done.attempt + 1, "unknown_outcome")
            return RunStep(step_id, done.attempt + 1)
        if done.outcome == NOT_RUN:
            return _gate(step, done.attempt + 1)
        if step.kind == "wait_until" and done.outcome == NOT_YET:
            due = min((done.ended_at or done.started_at) + timedelta(seconds=step.every),
                      deadline(step, record))
            return Sleep(step_id, due) if now < due else RunStep(step_id, done.attempt + 1)
        target, reason = _way_on(runbook, step, done.outcome or "ok", last)
        if target == FAIL:
            return Finish("failed", reason)
        if target == ABORT:
            return Finish("aborted", reason)
        step_id = target


def _gate(step: Any, attempt: int) -> Next:
    if step.kind == "approve":
        return AwaitApproval(step.id, step.role)
    if step.kind == "confirm":
        return AskPerson(step.id, attempt, "confirm")
    if step.kind == "action" and step.action == "flush-cache":
        return AskPerson(step.id, attempt, "typed")
    if not step.safe:
        return AskPerson(step.id, attempt, "unsafe")
    return RunStep(step.id, attempt)


def _way_on(runbook: Runbook, step: Any, outcome: str, last: dict[str, StepRecord]) -> tuple[str, str]:
    """Where the run goes after `step` ended with `outcome`, and the reason when it ends there."""
    if step.kind == "decide":
        seen = decided_outcome(step, last)
        target = step.when.get(seen, step.otherwise)
        if target is None:
            return FAIL, f"{step.id}: no branch for {step.step}'s outcome {seen}"
        return target, f"{step.id}: {step.step} was {seen}"
    if outcome == "skipped":
        return runbook.successor(step), ""
    if outcome in ("failed", "timed_out"):
        return _follow(runbook, step, step.if_failed, f"step {step.id} {outcome.replace('_', ' ')}")
    if outcome == "no":
        return _follow(runbook, step, getattr(step, "if_no", ABORT), f"{step.id}: the answer was no")
    return runbook.successor(step), ""


def _follow(runbook: Runbook, step: Any, target: str, reason: str) -> tuple[str, str]:
    if target == CONTINUE:
        return runbook.successor(step), reason
    if target == END:
        return END, reason
    return target, reason


def decided_outcome(step: Any, last: dict[str, StepRecord]) -> str:
    """The outcome a decide step branches on: that of the step it names, `skipped` when it did not run."""
    seen = last.get(step.step)
    return seen.outcome or "skipped" if seen is not None and seen.state == "done" else "skipped"


def deadline(step: Any, record: Sequence[StepRecord]) -> datetime:
    """When a wait_until gives up: `timeout` after its first look began."""
    first = min(r.started_at for r in record if r.step_id == step.id)
    return first + timedelta(seconds=step.timeout)


def wait_outcome(step: Any, record: Sequence[StepRecord], *, true: bool, now: datetime) -> str:
    """A wait_until look's outcome: ok when the condition holds, timed_out when it does not at
    or after the deadline, else not_yet (look again). `record` includes the look's own start."""
    if true:
        return "ok"
    return "timed_out" if now >= deadline(step, record) else NOT_YET


__all__ = ["NOT_RUN", "NOT_YET", "AskPerson", "AwaitApproval", "Finish", "Next", "RunStep", "Sleep",
           "StepRecord", "decided_outcome", "deadline", "latest", "next_move", "wait_outcome"]
