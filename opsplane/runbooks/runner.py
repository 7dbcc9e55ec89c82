"""Driving a run: the engine says what is next, the runner does it and records it.

Whoever drives a run holds its claim (`store.claims`, key `runbook-run:ID`), renewed while a
step runs. Each step is marked started in the store, in the same transaction as a renewal of
that claim, before it acts, and done with its outcome after; a driver whose claim was taken
over stops without recording anything more. A process killed mid-step leaves a started step:
the next driver (`opsplane runbook resume`) asks the engine, which re-runs what is safe to
repeat and asks a person about the rest.

`start` is how anything starts a run: the CLI with a person at the terminal, the API or, later,
the alerting loop with nobody (`mode="auto"`, `person=None`): then safe steps run and the run
waits at the first step that needs a person.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psutil
from sqlalchemy import select

from opsplane.clock import Clock
from opsplane.errors import OpsplaneError
from opsplane.runbooks import engine, service
from opsplane.runbooks.flows import StepPlatform, plan_line, role_with_article
from opsplane.runbooks.models import Runbook
from opsplane.runbooks.tables import RunbookRunRow, RunbookStepRow
from opsplane.store import Store, claims

log = logging.getLogger(__name__)

LEASE = 30.0  # seconds a driver's claim lasts past its last renewal
RENEW_WITHIN = 10.0


class Person(Protocol):
    """Someone at the run who can answer; each method returns None when nobody can (the run waits)."""

    actor: str

    def confirm(self, run: RunbookRunRow, step: Any) -> bool | None: ...
    def allow(self, run: RunbookRunRow, step: Any, plan: str) -> str | None: ...  # yes | no | skip
    def typed(self, run: RunbookRunRow, step: Any, word: str) -> bool | None: ...
    def happened(self, run: RunbookRunRow, step: Any, attempt: int) -> str | None: ...  # yes | no | abort


class RunTakenOver(OpsplaneError):
    """Another driver holds the run: this one stops and records nothing more."""


@dataclass(frozen=True)
class StepShown:
    """What the runner tells its watcher about a step: before it runs (outcome None) and after."""

    run_id: int
    step: Any
    attempt: int
    outcome: str | None
    output: str


Watcher = Callable[[StepShown], None]


def holder_name() -> str:
    """This process as a claim's holder: host and pid, so a resume on the same host can tell
    that the holder is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start(store: Store, *, runbook: Runbook, parameters: dict[str, str], requested_by: str, mode: str,
          clock: Clock, incident_id: int | None = None) -> int:
    """Record a new run of `runbook` (filled with `parameters`); its id. Drive it with `Runner`."""
    with store.session() as session:
        run = service.create(session, runbook=runbook, parameters=parameters, incident_id=incident_id,
                             requested_by=requested_by, mode=mode, now=clock.now())
        return run.id


class Runner:
    """Drives runs through `platform`, asking `person` (None: nobody there) what needs a person."""

    def __init__(self, store: Store, platform: StepPlatform, *, clock: Clock, actor: str,
                 person: Person | None, sleep: Callable[[float], None], holder: str | None = None,
                 allow_unsafe: bool = False, watcher: Watcher | None = None) -> None:
        self.store = store
        self.platform = platform
        self.clock = clock
        self.actor = actor
        self.person = person
        self.sleep = sleep
        self.holder = holder or holder_name()
        self.allow_unsafe = allow_unsafe  # --yes: unsafe steps run without asking (a cache flush still asks)
        self.watch = watcher or (lambda shown: None)
        self._keeper: claims.LeaseKeeper[claims.Claim] = claims.LeaseKeeper(
            self._renew, now=clock.now, renew_within=RENEW_WITHIN, what="runbook run",
            thread_name="runbook-claims")

    def close(self) -> None:
        self._keeper.close()

    def _renew(self, claim: claims.Claim, now: datetime) -> bool:
        with self.store.session() as session:
            return claims.renew(session, claim, now)

    def drive(self, run_id: int) -> str:
        """Run steps until the run ends or waits for a person; the run's state then."""
        claim = self._take(run_id)
        with self._keeper.holding(claim):
            state = self._loop(run_id, claim)
        with self.store.session() as session:
            if state in service.FINAL:
                claims.finish(session, claim, self.clock.now())
            else:
                claims.release(session, claim, self.clock.now())
        return state

    def _take(self, run_id: int) -> claims.Claim:
        now = self.clock.now()
        key = service.run_claim(run_id)
        with self.store.session() as session:
            service.get(session, run_id)
            taken = claims.take(session, key, holder=self.holder, now=now, lease=LEASE)
            if taken is None:
                held = session.get(claims.WorkClaim, key)
                if held is not None and held.done_at is None and _gone(held.holder):
                    # its holder was a process on this machine that no longer runs (kill -9)
                    claims.release(session, claims.Claim(key, held.holder, held.token, LEASE, now), now)
                    taken = claims.take(session, key, holder=self.holder, now=now, lease=LEASE)
            if taken is None:
                held = session.get(claims.WorkClaim, key)
                who = held.holder if held is not None else "?"
                raise RunTakenOver(f"run {run_id} is being driven by {who}; wait for it, or until its "
                                   f"claim lapses ({LEASE:g} s after that process stops)")
            return taken

    def _loop(self, run_id: int, claim: claims.Claim) -> str:
        while True:
            with self.store.session() as session:
                run = service.get(session, run_id)
                if run.state in service.FINAL:
                    return run.state
                runbook = service.runbook_of(run)
                rows = service.steps(session, run_id)
                move = engine.next_move(runbook, service.record(rows), now=self.clock.now())
                if isinstance(move, engine.Finish):
                    service.finish(session, run, state=move.state, reason=move.reason, actor=self.actor,
                                   now=self.clock.now())
                    return move.state
                if isinstance(move, engine.AwaitApproval):
                    approver = role_with_article(move.role)
                    service.wait(session, run, step_id=move.step_id, actor=self.actor, now=self.clock.now(),
                                 why=f"approval by {approver} other than {run.requested_by}", approval=True)
                    return run.state
            if isinstance(move, engine.Sleep):
                left = (move.until - self.clock.now()).total_seconds()
                if left > 0:
                    self.sleep(left)
                continue
            step = runbook.step(move.step_id)
            if isinstance(move, engine.AskPerson):
                waiting = self._ask(run_id, step, move, claim)
                if waiting is not None:
                    return waiting
                continue
            self._run(run_id, runbook, step, move.attempt, claim, confirmed_by=None)

    # --- a person's answers -----------------------------------------------------------------

    def _ask(self, run_id: int, step: Any, move: engine.AskPerson, claim: claims.Claim) -> str | None:
        """Put the question to the person; None when the run goes on, else its state."""
        with self.store.session() as session:
            run = service.get(session, run_id)
        person = self.person
        who = person.actor if person else self.actor
        if move.why == "confirm":
            said = person.confirm(run, step) if person else None
            if said is None:
                return self._wait(run_id, step.id, f"a person to answer: {step.prompt}")
            with self.store.session() as session:
                self._fence(session, claim)
                service.answer(session, service.get(session, run_id), step=step, attempt=move.attempt,
                               outcome="yes" if said else "no", by=who, output=step.prompt,
                               now=self.clock.now())
            self.watch(StepShown(run_id, step, move.attempt, "yes" if said else "no", step.prompt))
            return None
        if move.why == "unknown_outcome":
            said_happened = person.happened(run, step, move.attempt - 1) if person else None
            if said_happened is None:
                return self._wait(run_id, step.id, f"a person to say whether step {step.id} happened: it was "
                                  "started and cut short, and is not idempotent")
            if said_happened == "abort":
                return self._abort(run_id, f"aborted by {who} after step {step.id} was cut short")
            with self.store.session() as session:
                self._fence(session, claim)
                run = service.get(session, run_id)
                cut = _started_row(session, run_id, step.id)
                outcome = "ok" if said_happened == "yes" else engine.NOT_RUN
                note = (f"cut short; {who} says it happened" if said_happened == "yes" else
                        f"cut short; {who} says it did not happen: it runs again")
                service.finish_step(session, run, cut, outcome=outcome, output=note, actor=who,
                                    now=self.clock.now(), confirmed_by=who)
            self.watch(StepShown(run_id, step, move.attempt - 1, outcome, note))
            return None
        if move.why == "typed":
            said_typed = person.typed(run, step, step.target) if person else None
            if said_typed is None:
                return self._wait(run_id, step.id,
                                  f"a person to type {step.target!r} to confirm: {plan_line(step)}")
            if not said_typed:
                return self._abort(run_id, f"{who} did not type {step.target!r}: nothing was flushed")
            self._run(run_id, None, step, move.attempt, claim, confirmed_by=who)
            return None
        # an unsafe step
        if person is not None and self.allow_unsafe:
            said_allow: str | None = "yes"
        else:
            said_allow = person.allow(run, step, plan_line(step)) if person else None
        if said_allow is None:
            return self._wait(run_id, step.id, f"a person: step {step.id} is not safe to run unattended "
                              f"({plan_line(step)})")
        if said_allow == "no":
            return self._abort(run_id, f"{who} chose not to run step {step.id}")
        if said_allow == "skip":
            with self.store.session() as session:
                self._fence(session, claim)
                service.answer(session, service.get(session, run_id), step=step, attempt=move.attempt,
                               outcome="skipped", by=who, output=f"skipped by {who}", now=self.clock.now())
            self.watch(StepShown(run_id, step, move.attempt, "skipped", f"skipped by {who}"))
            return None
        self._run(run_id, None, step, move.attempt, claim, confirmed_by=who)
        return None

    def _wait(self, run_id: int, step_id: str, why: str) -> str:
        with self.store.session() as session:
            run = service.get(session, run_id)
            service.wait(session, run, step_id=step_id, why=why, actor=self.actor, now=self.clock.now())
            return run.state

    def _abort(self, run_id: int, reason: str) -> str:
        with self.store.session() as session:
            run = service.get(session, run_id)
            service.finish(session, run, state="aborted", reason=reason, actor=self.actor,
                           now=self.clock.now())
            return run.state

    # --- running a step -----------------------------------------------------------------------

    def _run(self, run_id: int, runbook: Runbook | None, step: Any, attempt: int, claim: claims.Claim, *,
             confirmed_by: str | None) -> None:
        with self.store.session() as session:
            self._fence(session, claim)
            run = service.get(session, run_id)
            runbook = runbook or service.runbook_of(run)
            row = service.start_step(session, run, step=step, attempt=attempt, holder=self.holder,
                                     confirmed_by=confirmed_by, now=self.clock.now())
            row_id, label, requested_by = row.id, f"runbook {run.runbook}, run {run.id}", run.requested_by
            record = service.record(service.steps(session, run_id))
        self.watch(StepShown(run_id, step, attempt, None, plan_line(step)))
        actor = confirmed_by or (self.person.actor if self.person else self.actor) or requested_by
        outcome, output = self._do(run_id, runbook, step, record, actor=actor, label=label)
        with self.store.session() as session:
            self._fence(session, claim)
            run = service.get(session, run_id)
            done = session.get(RunbookStepRow, row_id)
            assert done is not None
            service.finish_step(session, run, done, outcome=outcome, output=output, actor=actor,
                                now=self.clock.now())
        self.watch(StepShown(run_id, step, attempt, outcome, output))

    def _do(self, run_id: int, runbook: Runbook, step: Any, record: list[engine.StepRecord], *, actor: str,
            label: str) -> tuple[str, str]:
        """The step's outcome and output; a failure to look or act is a failed step."""
        kind = step.kind
        try:
            if kind == "note":
                return "ok", step.text
            if kind == "decide":
                seen = engine.decided_outcome(step, engine.latest(record))
                target = step.when.get(seen, step.otherwise) or "fail"
                return "ok", f"{step.step} was {seen}: on to {target}"
            if kind == "command":
                return self.platform.command(list(step.argv), timeout=step.timeout, environ={
                    "OPSPLANE_RUNBOOK": runbook.name, "OPSPLANE_RUNBOOK_RUN": str(run_id)})
            if kind == "action":
                return self.platform.action(step, actor=actor, run_label=label)
            if kind == "query":
                return judge_query(step, self.platform.promql(step.promql))
            if kind == "report":
                return self.platform.report(step)
            found = self.platform.check(step.check) if step.check else self.platform.promql(step.promql)
            if kind == "wait_until":
                return engine.wait_outcome(step, record, true=found.true, now=self.clock.now()), found.said
            return ("ok" if found.true else "failed"), found.said
        except OpsplaneError as exc:
            return "failed", str(exc)
        except Exception as exc:  # a step's failure must not leave the run without its outcome
            log.exception("runbook step %s failed unexpectedly", step.id)
            return "failed", f"{type(exc).__name__}: {exc}"

    def _fence(self, session: Any, claim: claims.Claim) -> None:
        if not claims.renew(session, claim, self.clock.now()):
            raise RunTakenOver(f"the claim on {claim.key} was taken over: this driver stops")


def judge_query(step: Any, found: Any) -> tuple[str, str]:
    """A query's outcome by its figures: failed above `fail_above`, warned above `warn_above`."""
    top = max(found.values, default=None)
    if top is not None and step.fail_above is not None and top > step.fail_above:
        return "failed", f"{found.said}\nabove {step.fail_above:g}"
    if top is not None and step.warn_above is not None and top > step.warn_above:
        return "warned", f"{found.said}\nabove {step.warn_above:g}"
    return "ok", found.said


def _started_row(session: Any, run_id: int, step_id: str) -> RunbookStepRow:
    row = session.scalars(select(RunbookStepRow).where(
        RunbookStepRow.run_id == run_id, RunbookStepRow.step_id == step_id, RunbookStepRow.state == "started")
        .order_by(RunbookStepRow.attempt.desc())).first()
    if row is None:
        raise OpsplaneError(f"step {step_id} of run {run_id} has no attempt left started")
    return row


def _gone(holder: str) -> bool:
    """Whether a claim's holder was a process on this host that has ended."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not psutil.pid_exists(int(pid))
