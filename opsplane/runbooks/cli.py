"""`opsplane runbook list|show|run|resume|approve|abort|runs|status`."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError

app = typer.Typer(no_args_is_help=True)
_MARK = {"ok": "[green]✓ ok[/]", "warned": "[yellow]! warned[/]",
         "yes": "[green]✓ yes[/]", "failed": "[red]✗ failed[/]",
         "timed_out": "[red]✗ timed out[/]", "no": "[yellow]✗ no[/]", "skipped": "[yellow]- skipped[/]",
         "not_yet": "[yellow]… not yet[/]", "not_run": "[yellow]- did not happen[/]"}
_EXIT = {"succeeded": 0, "waiting": 1, "awaiting_approval": 1, "aborted": 1, "failed": 2}


def _catalog(ctx: typer.Context) -> tuple[Any, Any, dict[str, Any]]:
    from opsplane.runbooks.loader import catalog

    inventory, base_dir = load_inventory(ctx)
    return inventory, base_dir, catalog(inventory, base_dir)


def _find(found: dict[str, Any], name: str) -> Any:
    if name not in found:
        import difflib

        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"no runbook {name!r}{hint}; `opsplane runbook list` lists them")
    return found[name]


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The runbooks opsplane knows: the inventory's runbooks directory and those it ships."""
    _, _, found = _catalog(ctx)
    rows = [{"name": r.name, "title": r.runbook.title, "steps": len(r.runbook.steps),
             "alerts": r.runbook.for_.alerts, "services": r.runbook.for_.services,
             "parameters": list(r.runbook.parameters), "file": r.file} for r in found.values()]
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("no runbooks: set runbooks.dir in the inventory to a directory of runbook files")
        return
    table = Table("NAME", "TITLE", "STEPS", "FOR", "PARAMETERS", "FILE")
    for row in rows:
        table.add_row(row["name"], row["title"], str(row["steps"]),
                      ", ".join([*row["alerts"], *row["services"]]) or "-",
                      ", ".join(row["parameters"]) or "-", row["file"])
    out.print(table)


@app.command()
def show(ctx: typer.Context, name: str = typer.Argument(..., help="The runbook."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A runbook's parameters and steps: what each does, whether it is safe, where it leads."""
    loaded = _find(_catalog(ctx)[2], name)
    runbook = loaded.runbook
    if json_out:
        print_json({**runbook.model_dump(mode="json", by_alias=True), "file": loaded.file})
        return
    out.print(f"[bold]{escape(runbook.title)}[/] ({runbook.name}, {loaded.file})")
    if runbook.description:
        out.print(escape(runbook.description.strip()))
    for pname, parameter in runbook.parameters.items():
        default = f" (default {parameter.default})" if parameter.default is not None else " (required)"
        out.print(f"  parameter {pname}: {parameter.of}{default} {escape(parameter.description)}")
    out.print(_plan_table(runbook))


def _plan_table(runbook: Any) -> Table:
    from opsplane.runbooks.flows import plan_line

    table = Table("#", "STEP", "KIND", "SAFE", "WHAT", "THEN")
    for index, step in enumerate(runbook.steps, 1):
        then = runbook.successor(step) if step.kind != "decide" else "(decides)"
        table.add_row(str(index), step.id, step.kind, "yes" if step.safe else "no",
                      escape(step.title or plan_line(step)), then)
    return table


def _parse_params(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE, such as service=orders")
        found[key.strip()] = value
    return found


def _prepared(inventory: Any, loaded: Any, given: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The runbook filled with its parameters, checked against the inventory; UsageError
    naming the file and step of every problem."""
    from opsplane.runbooks.loader import component_problem, cross_check
    from opsplane.runbooks.models import render, resolve_parameters

    runbook = loaded.runbook
    values, problems = resolve_parameters(runbook, given)
    for pname, value in values.items():
        found = component_problem(runbook.parameters[pname].of, value, inventory)
        if found:
            problems.append(f"parameter {pname}: {found}")
    if problems:
        raise UsageError("; ".join(problems))
    rendered = render(runbook, values)
    located = []
    for path, message in cross_check(rendered, inventory):
        step = rendered.steps[path[1]] if len(path) > 1 and isinstance(path[1], int) else None
        where = f"{loaded.file}:{loaded.lines.get(step.id, 0)} {step.id}" if step else loaded.file
        located.append(f"{where}: {message}")
    if located:
        raise UsageError("with these parameters: " + "; ".join(located))
    return rendered, values


@app.command()
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The runbook."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter as NAME=VALUE (repeatable)."),
    incident: int = typer.Option(None, "--incident", help="The incident the run is for: its steps join "
                                 "the incident's timeline and post-mortem."),
    auto: bool = typer.Option(False, "--auto", help="Nobody answers: safe steps run, the run waits at the "
                              "first step that needs a person."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what each step would do; record nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run unsafe steps without asking (a cache flush "
                             "still asks for its name; confirmations and approvals still need people)."),
) -> None:
    """Run a runbook step by step, each step recorded.

    Exit 0 when it succeeded, 1 when it waits for a person or was aborted, 2 when it failed."""
    inventory, base_dir, found = _catalog(ctx)
    loaded = _find(found, name)
    runbook, values = _prepared(inventory, loaded, _parse_params(param))
    if dry_run:
        out.print(f"[bold]{escape(runbook.title)}[/]: dry run, nothing is run or recorded")
        out.print(_plan_table(runbook))
        return
    actor = acting_as(Role.RESPONDER)
    from opsplane.runbooks import runner

    clock = SystemClock()
    store = open_store(create=True)
    try:
        if incident is not None:
            from opsplane.incidents import service as incidents

            with store.session() as session:
                incidents.get_or_raise(session, incident_id=incident)
        run_id = runner.start(store, runbook=runbook, parameters=values, requested_by=actor,
                              mode="auto" if auto else "manual", clock=clock, incident_id=incident)
        out.print(f"run {run_id}: {escape(runbook.title)} ({runbook.name}"
                  + (f", INC-{incident}" if incident is not None else "") + ")")
        state = _drive(store, inventory, base_dir, run_id, actor=actor, attended=not auto, yes=yes)
    finally:
        store.close()
    raise typer.Exit(_EXIT.get(state, 2))


@app.command()
def resume(ctx: typer.Context, run_id: int = typer.Argument(..., help="The run."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Run unsafe steps without asking.")) -> None:
    """Go on with a run that waits for a person, or whose process died.

    A step cut short runs again only when that is safe; otherwise you are asked whether it happened."""
    inventory, base_dir = load_inventory(ctx)
    actor = acting_as(Role.RESPONDER)
    store = open_store()
    try:
        state = _drive(store, inventory, base_dir, run_id, actor=actor, attended=True, yes=yes)
    finally:
        store.close()
    raise typer.Exit(_EXIT.get(state, 2))


def _drive(store: Any, inventory: Any, base_dir: Any, run_id: int, *, actor: str, attended: bool,
           yes: bool) -> str:
    from opsplane.runbooks import runner, service
    from opsplane.runbooks.flows import LivePlatform

    clock = SystemClock()
    platform = LivePlatform(inventory, base_dir=base_dir, store=store, clock=clock)
    person = TerminalPerson(actor) if attended else None
    driver = runner.Runner(store, platform, clock=clock, actor=actor, person=person, sleep=time.sleep,
                           allow_unsafe=yes, watcher=_show)
    try:
        state = driver.drive(run_id)
    finally:
        driver.close()
    with store.session() as session:
        row = service.get(session, run_id)
        said = {"succeeded": "[green]succeeded[/]", "failed": "[red]failed[/]",
                "aborted": "[yellow]aborted[/]"}.get(state, f"[yellow]{state.replace('_', ' ')}[/]")
        out.print(f"run {run_id} {said}" + (f": {escape(row.reason)}" if row.reason and state != "succeeded"
                                            else ""))
        if state in ("waiting", "awaiting_approval"):
            out.print(f"  waits for {escape(row.waiting_for)}")
            hint = (f"opsplane runbook approve {run_id} --step {row.current_step}, then "
                    if state == "awaiting_approval" else "")
            out.print(f"  next: {hint}opsplane runbook resume {run_id}")
    return state


def _show(shown: Any) -> None:
    step = shown.step
    if shown.outcome is None:
        out.print(f"[bold]▶ {step.id}[/] [dim]{step.kind}[/] {escape(shown.output)}")
        return
    out.print(f"  {_MARK.get(shown.outcome, escape(shown.outcome))}")
    lines = shown.output.strip().splitlines()
    for line in lines[-12:]:
        out.print(f"    [dim]{escape(line)}[/]")


class TerminalPerson:
    """The person at the terminal; no answer (end of input) leaves the run waiting."""

    def __init__(self, actor: str) -> None:
        self.actor = actor

    def confirm(self, run: Any, step: Any) -> bool | None:
        try:
            return bool(typer.confirm(f"{step.id}: {step.prompt}", default=False))
        except typer.Abort:
            return None

    def allow(self, run: Any, step: Any, plan: str) -> str | None:
        try:
            said = typer.prompt(f"{step.id} changes something: {plan}. Run it? [y]es/[n]o (abort)/[s]kip",
                                default="", show_default=False)
        except typer.Abort:
            return None
        return {"y": "yes", "yes": "yes", "n": "no", "no": "no", "s": "skip", "skip": "skip"}.get(
            said.strip().lower())

    def typed(self, run: Any, step: Any, word: str) -> bool | None:
        from opsplane.runbooks.flows import plan_line

        try:
            said = typer.prompt(f"{plan_line(step)}. Type {word} to go on", default="", show_default=False)
        except typer.Abort:
            return None
        return bool(said.strip() == word)

    def happened(self, run: Any, step: Any, attempt: int) -> str | None:
        try:
            said = typer.prompt(f"step {step.id} (attempt {attempt}) was started and cut short. Did it "
                                "happen? [y]es (go on) / [n]o (run it again) / [a]bort", default="",
                                show_default=False)
        except typer.Abort:
            return None
        return {"y": "yes", "yes": "yes", "n": "no", "no": "no", "a": "abort", "abort": "abort"}.get(
            said.strip().lower())


@app.command()
def approve(run_id: int = typer.Argument(..., help="The run."),
            step: str = typer.Option(..., "--step", help="The approval step the run waits at.")) -> None:
    """Approve a run's approval step: a person other than its requester, with the step's role."""
    from opsplane.runbooks import service

    with open_store().session() as session:
        row = service.get(session, run_id)
        try:
            needed = Role(service.runbook_of(row).step(step).role)
        except (KeyError, AttributeError):
            raise service.RunRefused(f"run {run_id} has no approval step {step!r}") from None
    actor = acting_as(needed)
    with open_store().session() as session:
        row = service.get(session, run_id)
        service.approve(session, row, step_id=step, actor=actor, role=needed, now=SystemClock().now())
    out.print(f"run {run_id}: step {step} approved by {actor}; next: opsplane runbook resume {run_id}")


@app.command()
def abort(run_id: int = typer.Argument(..., help="The run.")) -> None:
    """End a run that waits: nothing more of it runs."""
    from opsplane.runbooks import service

    actor = acting_as(Role.RESPONDER)
    with open_store().session() as session:
        service.abort(session, service.get(session, run_id), actor=actor, now=SystemClock().now())
    out.print(f"run {run_id} aborted")


@app.command()
def runs(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
         limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first.")) -> None:
    """Runbook runs, newest first."""
    from opsplane.runbooks import service

    with open_store().session() as session:
        rows = [service.as_dict(r) for r in service.get_all(session, limit=limit)]
    if json_out:
        print_json(rows)
        return
    table = Table("ID", "RUNBOOK", "STATE", "STEP", "INCIDENT", "BY", "MODE", "STARTED")
    for row in rows:
        table.add_row(str(row["id"]), row["runbook"], row["state"], row["current_step"] or "-",
                      f"INC-{row['incident']}" if row["incident"] else "-", row["requested_by"], row["mode"],
                      row["started_at"][:19])
    out.print(table)


@app.command()
def status(run_id: int = typer.Argument(..., help="The run."),
           json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A run and every attempt of its steps. Exit code as `run` gives it."""
    from opsplane.runbooks import service

    with open_store().session() as session:
        row = service.get(session, run_id)
        found = service.as_dict(row, service.steps(session, run_id))
    if json_out:
        print_json(found)
        raise typer.Exit(_EXIT.get(found["state"], 2) if found["state"] in _EXIT else 0)
    out.print(f"run {found['id']}: {escape(found['title'])} ({found['runbook']}) [bold]{found['state']}[/]"
              + (f" at {found['current_step']}" if found["state"] not in ("succeeded",) else ""))
    if found["waiting_for"]:
        out.print(f"  waits for {escape(found['waiting_for'])}")
    if found["reason"]:
        out.print(f"  {escape(found['reason'])}")
    table = Table("STEP", "KIND", "TRY", "OUTCOME", "BY", "STARTED", "OUTPUT")
    for step in found["steps"]:
        by = step["approved_by"] or step["confirmed_by"] or "-"
        output = step["output"].strip().splitlines()
        outcome = "[red]started, not done[/]" if step["state"] == "started" else step["outcome"] or "-"
        table.add_row(step["step"], step["kind"], str(step["attempt"]), outcome, by,
                      step["started_at"][11:19], escape(output[-1][:80]) if output else "")
    out.print(table)
    raise typer.Exit(_EXIT.get(found["state"], 0) if found["state"] not in ("running",) else 0)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="runbook", help="Runbooks as code: list, show, run, resume, approve.")


__all__ = ["app", "register"]
