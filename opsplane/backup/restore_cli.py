"""`opsplane restore POLICY` and `opsplane drill restore POLICY`: a backup brought back, and a
restore drill that measures RTO and RPO against the policy's targets.

A restore over production needs `--force`, the operator role and the component's name typed
back (or given with `--confirm NAME` where nobody can type); `--dry-run` prints the plan and
touches nothing. Exit codes: 0 done (a drill: targets met), 1 a drill missed a target, 2 failed,
3 refused (nothing changed)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from opsplane.auth.service import Role
from opsplane.cli_support import (
    acting_as,
    load_inventory,
    open_store,
    out,
    parse_when,
    print_json,
)
from opsplane.clock import SystemClock


def _scratch(inventory: Any, base: Path) -> Path:
    from opsplane.backup.policy import scratch_dir

    scratch = scratch_dir(inventory)
    return scratch if scratch.is_absolute() else base / scratch


def restore_command(
    ctx: typer.Context,
    policy: str = typer.Argument(..., metavar="POLICY", help="The backup policy (usually the component)."),
    latest: bool = typer.Option(False, "--latest", help="The newest recoverable point."),
    at: str = typer.Option(None, "--at", metavar="TIME",
                           help="A moment (ISO 8601, or an age such as 15m): pgbackrest policies."),
    backup_id: int = typer.Option(None, "--backup", metavar="ID", help="This backup, as it ended."),
    to: str = typer.Option(None, "--to", metavar="new-cluster|DIR",
                           help="Beside production: a new cluster left running, or a directory. "
                           "Without it: over production (needs --force)."),
    repository: str = typer.Option(None, "--repository", help="Restore from this repository."),
    force: bool = typer.Option(False, "--force", help="Restore over the running production data."),
    confirm: str = typer.Option(None, "--confirm", metavar="NAME",
                                help="The component's name, for a forced restore where nobody can type it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; touch nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Restore a backup: --latest, --at TIME or --backup ID; over production, beside it, or into DIR."""
    from opsplane.backup.factory import open_engine
    from opsplane.backup.policy import apply
    from opsplane.backup.restore import RestoreRefused, plan_restore, run_restore

    inventory, base = load_inventory(ctx)
    chosen = apply(inventory, policy)
    clock = SystemClock()
    now = clock.now()
    moment = parse_when(at, now) if at is not None else None
    with open_store().session() as session:
        plan = plan_restore(session, chosen, latest=latest, at=moment, backup_id=backup_id, to=to,
                            repository=repository, force=force or dry_run, now=now)
    if dry_run:
        if json_out:
            print_json({"dry_run": True, **plan.as_dict()})
        else:
            out.print(f"[bold]restore {policy}[/] (dry run: nothing is touched)")
            for step in plan.steps():
                out.print(f"  - {escape(step)}")
            if plan.target == "production" and not force:
                out.print("  [yellow]over production: needs --force, the operator role and the name "
                          "typed back[/]")
        return
    actor = acting_as(Role.OPERATOR)
    if plan.target == "production":
        name = chosen.component or chosen.name
        typed = confirm if confirm is not None else _ask(f"This replaces what {name} holds now. "
                                                         f"Type {name} to go on: ")
        if typed != name:
            raise RestoreRefused(f"not confirmed: expected {name!r}; nothing was changed")
    engine = open_engine(inventory, chosen, environ=os.environ, base_dir=base)
    store = open_store(create=True)
    showing = not json_out and out.is_terminal
    try:
        with out.status(f"restoring {policy} {plan.where}") if showing else contextlib.nullcontext():
            done = run_restore(store, engine, plan, scratch=_scratch(inventory, base), clock=clock,
                               actor=actor)
    finally:
        store.close()
    if json_out:
        print_json({"restore": done.restore_id, "ok": done.ok, "seconds": round(done.seconds, 1),
                    "outcome": done.outcome, **plan.as_dict()})
    elif done.ok:
        out.print(f"restore {done.restore_id} of {policy} done in {done.seconds:.1f} s: "
                  f"{escape(done.outcome)}")
    else:
        out.print(f"restore {done.restore_id} of {policy} [red]failed[/] after {done.seconds:.1f} s: "
                  f"{escape(done.outcome)}")
    raise typer.Exit(0 if done.ok else 2)


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        from opsplane.backup.restore import RestoreRefused

        raise RestoreRefused("a restore over production must be confirmed: run it at a terminal, or pass "
                             "--confirm NAME with the component's name")
    return input(prompt).strip()


drill_app = typer.Typer(no_args_is_help=True, help="Restore drills that measure RTO and RPO.")


@drill_app.command("restore")
def drill_restore(
    ctx: typer.Context,
    policy: str = typer.Argument(..., metavar="POLICY", help="The backup policy."),
    repository: str = typer.Option(None, "--repository", help="Restore from this repository."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the report as Markdown."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Restore the newest recoverable point into a scratch server and measure RTO and RPO.

    Writes a marker row into production every second while it runs (PostgreSQL), removed
    after. Exit 0 when both targets are met, 1 when one is missed, 2 when the restore failed."""
    from opsplane.backup.drill import run_drill
    from opsplane.backup.factory import open_engine
    from opsplane.backup.policy import apply

    inventory, base = load_inventory(ctx)
    chosen = apply(inventory, policy)
    actor = acting_as(Role.OPERATOR)
    engine = open_engine(inventory, chosen, environ=os.environ, base_dir=base)
    store = open_store(create=True)
    showing = not (json_out or markdown) and out.is_terminal
    try:
        with out.status(f"drilling a restore of {policy}") if showing else contextlib.nullcontext():
            report = run_drill(store, engine, scratch=_scratch(inventory, base), clock=SystemClock(),
                               actor=actor, repository=repository)
    finally:
        store.close()
    if json_out:
        print_json(report.as_dict())
    elif markdown:
        out.print(report.markdown(), markup=False)
    else:
        _print_drill(report.as_dict())
    raise typer.Exit(2 if not report.restored else 0 if report.rto_met and report.rpo_met else 1)


@drill_app.command("history")
def drill_history(
    ctx: typer.Context,
    policy: str = typer.Argument(None, metavar="[POLICY]", help="Only this policy's drills."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The drills kept as evidence, newest first, with RTO and RPO against their targets."""
    from opsplane.backup import service

    if policy is not None:
        from opsplane.backup.policy import apply

        apply(load_inventory(ctx)[0], policy)
    with open_store().session() as session:
        rows = [service.restore_as_dict(row)
                for row in service.restores(session, policy=policy, purpose="drill", limit=limit)]
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("no drills yet; `opsplane drill restore POLICY` runs one")
    for row in rows:
        _print_drill({**row["report"], "drill": row["id"], "policy": row["policy"],
                      "started": row["started_at"], "state": row["state"], "error": row["error"]})


def _print_drill(report: dict[str, Any]) -> None:
    from opsplane.backup.compliance import duration_words

    def said(what: str) -> str:
        value, target = report.get(f"{what}_seconds"), report.get(f"{what}_target_seconds")
        if value is None:
            return f"{what.upper()} -"
        mark = "[green]met[/]" if report.get(f"{what}_met") else "[red]missed[/]"
        return f"{what.upper()} {value:.1f} s (target {duration_words(target or 0)}) {mark}"

    when = str(report.get("started", ""))[:19].replace("T", " ")
    head = f"drill {report.get('drill')} of {report.get('policy')} at {when}"
    out.print(f"{head}: {said('rto')}, {said('rpo')}")
    for problem in report.get("problems") or ([report["error"]] if report.get("error") else []):
        out.print(f"  [red]![/] {escape(str(problem))}")


def register(root: typer.Typer) -> None:
    root.command("restore")(restore_command)
    root.add_typer(drill_app, name="drill", help="Restore drills: RTO and RPO measured, kept as evidence.")

