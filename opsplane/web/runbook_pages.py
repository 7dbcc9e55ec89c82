"""What the dashboard's runbook pages show, read through the runbook loader and service.

The runbooks are those `opsplane runbook list` lists (the inventory's directory over the ones
opsplane ships); the runs and their step attempts are the rows `opsplane runbook status` reads.
A run's steps are described from the runbook as it was when the run began (its `definition`,
filled with its parameters), so an edit of the file since does not change what the page says
the run did. Every value here is plain text for the templates, which escape it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from opsplane.config.models import Inventory
from opsplane.errors import ConfigError
from opsplane.runbooks import service
from opsplane.runbooks.flows import plan_line, role_with_article
from opsplane.runbooks.loader import LoadedRunbook, catalog
from opsplane.runbooks.models import Runbook
from opsplane.runbooks.tables import RunbookRunRow, RunbookStepRow
from opsplane.timefmt import span

RUN_LIMIT = 50
OUTPUT_LINES = 40  # lines of a step's output the run page shows (the end, where errors are)
# The colour of a run's state and of a step's outcome; the word is always written beside it.
TONES = {"running": "moving", "waiting": "waiting", "awaiting_approval": "waiting", "succeeded": "good",
         "failed": "bad", "aborted": "none"}
OUTCOME_TONES = {"ok": "good", "yes": "good", "failed": "bad", "timed_out": "bad", "no": "waiting",
                 "skipped": "none", "not_yet": "moving", "not_run": "none"}
OUTCOME_WORDS = {"timed_out": "timed out", "not_yet": "not yet", "not_run": "did not happen"}


# --- runbooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPlan:
    """One step of a runbook as its page describes it."""

    number: int
    id: str
    kind: str
    title: str
    details: tuple[tuple[str, str], ...]  # (what, value): the check, the PromQL, argv, branches
    unattended: bool  # runs with nobody watching (`--auto`)
    gate: str  # why it needs a person when it does
    then: str  # where the run goes after it


@dataclass(frozen=True)
class RunbookLine:
    """A runbook of the catalog."""

    name: str
    title: str
    description: str
    alerts: tuple[str, ...]
    services: tuple[str, ...]
    parameters: tuple[tuple[str, str, str | None, str], ...]  # (name, of, default, description)
    steps: tuple[StepPlan, ...]
    file: str
    builtin: bool

    @property
    def unattended(self) -> tuple[str, ...]:
        """The ids of the steps that run with nobody watching."""
        return tuple(s.id for s in self.steps if s.unattended)

    @property
    def command(self) -> str:
        """The command that runs it, with each parameter the run must or may be given."""
        params = [f"--param {name}={default if default is not None else name.upper()}"
                  for name, _, default, _ in self.parameters]
        return " ".join(["opsplane runbook run", self.name, *params])


@dataclass(frozen=True)
class Catalog:
    """The runbooks, or the problems that keep them from loading."""

    runbooks: tuple[RunbookLine, ...]
    problems: tuple[str, ...]
    directory: str | None  # the inventory's runbooks.dir, when it names one


def runbook_catalog(inventory: Inventory, base_dir: Path) -> Catalog:
    """Every runbook by name; a runbook file with problems leaves the list empty and says
    where each problem is, as `opsplane config validate` would."""
    directory = inventory.runbooks.dir
    try:
        found = catalog(inventory, base_dir)
    except ConfigError as exc:
        return Catalog((), tuple(str(p) for p in exc.problems), directory)
    return Catalog(tuple(runbook_line(loaded) for loaded in found.values()), (), directory)


def runbook_line(loaded: LoadedRunbook) -> RunbookLine:
    runbook = loaded.runbook
    return RunbookLine(
        name=runbook.name, title=runbook.title, description=runbook.description.strip(),
        alerts=tuple(runbook.for_.alerts), services=tuple(runbook.for_.services),
        parameters=tuple((name, p.of, p.default, p.description) for name, p in runbook.parameters.items()),
        steps=step_plans(runbook), file=loaded.file, builtin=loaded.builtin)


def step_plans(runbook: Runbook) -> tuple[StepPlan, ...]:
    plans = []
    for number, step in enumerate(runbook.steps, 1):
        gate = person_needed(step)
        then = "(its branches)" if step.kind == "decide" else runbook.successor(step)
        plans.append(StepPlan(number, step.id, step.kind, step.title, step_details(step), unattended=not gate,
                              gate=gate, then=then))
    return tuple(plans)


def person_needed(step: Any) -> str:
    """Why a step waits for a person, as the engine decides it; '' when it runs unattended."""
    if step.kind == "approve":
        return f"approval by {role_with_article(step.role)} other than the requester"
    if step.kind == "confirm":
        return "a person's yes or no"
    if step.kind == "action" and step.action == "flush-cache":
        return "a person typing the cache's name"
    return "" if step.safe else "a person's go-ahead: not safe unattended"


def step_details(step: Any) -> tuple[tuple[str, str], ...]:
    """What a step does, field by field: the check or PromQL, the program and its arguments,
    the action and its target, the branches and where a failure leads."""
    kind = step.kind
    found: list[tuple[str, str]] = []
    if kind in ("check", "wait_until"):
        found.append(("check", step.check) if step.check else ("PromQL", step.promql))
        if kind == "wait_until":
            found.append(("looks", f"every {span(step.every)}, gives up after {span(step.timeout)}"))
    elif kind == "query":
        found.append(("PromQL", step.promql))
    elif kind == "command":
        found += [("argv", shlex.join(step.argv)), ("timeout", span(step.timeout))]
    elif kind == "action":
        found.append(("action", plan_line(step)))
        if step.target:
            found.append(("target", step.target))
        if step.instances is not None:
            found.append(("instances", str(step.instances)))
        if step.matchers:
            found += [("matchers", " ".join(step.matchers)), ("for", span(step.duration))]
    elif kind == "decide":
        found.append(("on", f"the outcome of {step.step}"))
        found += [(f"when {outcome}", target) for outcome, target in step.when.items()]
        found.append(("otherwise", step.otherwise or "fail"))
    elif kind in ("confirm", "approve"):
        if step.prompt:
            found.append(("asks", step.prompt))
        if kind == "approve":
            found.append(("role", step.role))
    else:
        found.append(("text", step.text))
    if getattr(step, "idempotent", False):
        found.append(("idempotent", "yes: run again after a crash without asking"))
    for name, words in (("if_failed", "if failed"), ("if_no", "if no")):
        target = getattr(step, name, None)
        if target is not None:
            found.append((words, target))
    return tuple(found)


def runbook_page(inventory: Inventory, base_dir: Path, name: str) -> RunbookLine | None:
    """The runbook `name`; None when the catalog has none (or cannot be read)."""
    found = runbook_catalog(inventory, base_dir)
    return next((r for r in found.runbooks if r.name == name), None)


# --- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunLine:
    """A run as the lists show it."""

    id: int
    runbook: str
    title: str
    incident_id: int | None
    requested_by: str
    mode: str
    state: str
    current_step: str | None
    started_at: datetime
    ended_at: datetime | None
    elapsed: str  # how long it ran, or has run so far

    @property
    def is_active(self) -> bool:
        return self.state in service.ACTIVE

    @property
    def tone(self) -> str:
        return TONES.get(self.state, "none")

    @property
    def state_words(self) -> str:
        return self.state.replace("_", " ")


def run_line(row: RunbookRunRow, now: datetime) -> RunLine:
    end = row.ended_at or now
    return RunLine(id=row.id, runbook=row.runbook, title=row.title, incident_id=row.incident_id,
                   requested_by=row.requested_by, mode=row.mode, state=row.state,
                   current_step=row.current_step, started_at=row.started_at, ended_at=row.ended_at,
                   elapsed=span(max((end - row.started_at).total_seconds(), 0.0)))


def run_list(session: Session, *, now: datetime, limit: int = RUN_LIMIT, runbook: str | None = None,
             incident_id: int | None = None) -> list[RunLine]:
    """Runs, newest first; only `runbook`'s or `incident_id`'s when given."""
    rows = service.get_all(session, limit=limit, runbook=runbook, incident_id=incident_id)
    return [run_line(row, now) for row in rows]


@dataclass(frozen=True)
class Attempt:
    """One attempt of a step of a run, or the step a run waits at (no attempt yet)."""

    step_id: str
    kind: str
    attempt: int
    title: str
    what: str  # the step as the runbook says it, filled with the run's parameters
    outcome: str | None  # None: started and not done, or not begun
    mark: str  # "", "now" (it runs), "waiting" (for a person), "cut" (started, its driver gone)
    started_at: datetime | None
    ended_at: datetime | None
    took: str
    confirmed_by: str | None
    approved_by: str | None
    output: str  # the end of what it printed
    output_cut: int  # lines left out above it

    @property
    def tone(self) -> str:
        if self.outcome is None:
            return {"now": "moving", "waiting": "waiting", "cut": "bad"}.get(self.mark, "none")
        return OUTCOME_TONES.get(self.outcome, "none")

    @property
    def outcome_words(self) -> str:
        if self.outcome is None:
            return {"now": "running", "waiting": "waiting", "cut": "started, not done"}.get(self.mark, "-")
        return OUTCOME_WORDS.get(self.outcome, self.outcome)


@dataclass(frozen=True)
class RunPage:
    """Everything a run's page shows."""

    run: RunLine
    parameters: tuple[tuple[str, str], ...]
    approvers: tuple[str, ...]
    waits: str  # what the run waits for, as a sentence; '' when it does not wait
    reason: str
    attempts: tuple[Attempt, ...]
    not_run: tuple[StepPlan, ...]  # steps of the runbook no attempt reached
    commands: tuple[str, ...]  # what a person types to go on, while the run waits


def run_page(session: Session, *, run_id: int, now: datetime) -> RunPage | None:
    """The page of run `run_id`; None when there is no such run."""
    row = session.get(RunbookRunRow, run_id)
    if row is None:
        return None
    runbook = service.runbook_of(row)
    rows = service.steps(session, run_id)
    line = run_line(row, now)
    attempts = [attempt(r, runbook, row, now) for r in rows]
    begun = {r.step_id for r in rows}
    if line.is_active and row.current_step and not any(a.outcome is None for a in attempts):
        attempts.append(waiting_at(runbook, row))
    shown = {a.step_id for a in attempts}
    return RunPage(
        run=line,
        parameters=tuple((str(k), str(v)) for k, v in row.parameters.items()),
        approvers=tuple(dict.fromkeys(r.approved_by for r in rows if r.approved_by)),
        waits=waits_sentence(row), reason=row.reason,
        attempts=tuple(attempts),
        not_run=tuple(p for p in step_plans(runbook) if p.id not in begun | shown),
        commands=next_commands(row),
    )


def attempt(row: RunbookStepRow, runbook: Runbook, run: RunbookRunRow, now: datetime) -> Attempt:
    step = _step(runbook, row.step_id)
    done = row.state == "done"
    mark = "" if done else "now" if run.state == "running" and run.current_step == row.step_id else "cut"
    end = row.ended_at or (now if mark == "now" else None)
    output, cut = excerpt(row.output)
    return Attempt(
        step_id=row.step_id, kind=row.kind, attempt=row.attempt, title=getattr(step, "title", ""),
        what=plan_line(step) if step is not None else "", outcome=row.outcome if done else None, mark=mark,
        started_at=row.started_at, ended_at=row.ended_at,
        took=span(max((end - row.started_at).total_seconds(), 0.0)) if end else "-",
        confirmed_by=row.confirmed_by, approved_by=row.approved_by, output=output, output_cut=cut)


def waiting_at(runbook: Runbook, run: RunbookRunRow) -> Attempt:
    """The step a run stopped at before it began it (a question, an approval, an unsafe step)."""
    step_id = run.current_step or ""
    step = _step(runbook, step_id)
    waits = run.state in ("waiting", "awaiting_approval")
    return Attempt(step_id=step_id, kind=getattr(step, "kind", "?"), attempt=0,
                   title=getattr(step, "title", ""), what=plan_line(step) if step is not None else "",
                   outcome=None, mark="waiting" if waits else "now", started_at=None, ended_at=None,
                   took="-", confirmed_by=None, approved_by=None, output="", output_cut=0)


def _step(runbook: Runbook, step_id: str) -> Any:
    try:
        return runbook.step(step_id)
    except KeyError:
        return None


def excerpt(output: str, lines: int = OUTPUT_LINES) -> tuple[str, int]:
    """The last `lines` lines of a step's output, and how many were left out above them."""
    found = output.rstrip("\n").splitlines()
    return "\n".join(found[-lines:]), max(len(found) - lines, 0)


def waits_sentence(run: RunbookRunRow) -> str:
    """'Waits for approval by an operator other than cli:ana.'; after an approval, 'Approved by
    token:ben: resume to go on.'"""
    if run.state not in ("waiting", "awaiting_approval"):
        return ""
    why = run.waiting_for.strip() or "a person"
    if why.startswith("approved by "):
        return f"{why[0].upper()}{why[1:]}."
    return f"Waits for {why}."


def next_commands(run: RunbookRunRow) -> tuple[str, ...]:
    """What a person types to take a run on, as `opsplane runbook run` prints it when it stops."""
    if run.state == "awaiting_approval":
        return (f"opsplane runbook approve {run.id} --step {run.current_step}",
                f"opsplane runbook resume {run.id}")
    if run.state == "waiting":
        return (f"opsplane runbook resume {run.id}",)
    return ()
