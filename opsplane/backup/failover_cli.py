"""`opsplane failover DATABASE`: promote the database's streaming standby, fence the old primary
and point PgBouncer at the new one (backup.failover in the inventory), timed against its target.

A failover needs the operator role (docs/decisions/0012) and the database's name typed as
confirmation, unless `--yes`; `--dry-run` only checks and prints the plan, needs no role and
records nothing. Exit codes: 0 failed over, 2 a step failed (the report says which, and what
was undone), 3 refused (nothing changed)."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.markup import escape

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, cli_actor, config_path, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError


class NotConfirmed(UsageError):
    """The operator did not type the database's name: nothing was changed."""


def failover_command(
    ctx: typer.Context,
    database: str = typer.Argument(..., metavar="DATABASE", help="The database, by its name in `databases`."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and print the plan; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for the database's name to confirm."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Promote DATABASE's standby, fence the old primary, repoint PgBouncer; measure each step.

    Exit 0 when it failed over, 2 when a step failed, 3 when refused (nothing changed)."""
    from opsplane.backup.failover import FailoverRefused, failover
    from opsplane.config.loader import load

    inventory = load(config_path(ctx))
    clock = SystemClock()
    if dry_run or not yes:
        try:
            preview = failover(None, inventory, database, clock=clock, actor=cli_actor(), environ=os.environ,
                               dry_run=True)
        except FailoverRefused as refused:
            _refused(refused, json_out)
            raise
        if dry_run:
            if json_out:
                print_json(preview.as_dict())
            else:
                _print_preview(preview)
            return
        if not json_out:
            _print_preview(preview)
    actor = acting_as(Role.OPERATOR)
    if not yes:
        typed = typer.prompt(f"Type {database} to fail it over to {_standby(preview)}", default="",
                             show_default=False)
        if typed.strip() != database:
            raise NotConfirmed(f"you typed {typed.strip()!r}, not {database!r}: nothing was changed")
    store = open_store(create=True)
    try:
        report = failover(store, inventory, database, clock=clock, actor=actor, environ=os.environ)
    except FailoverRefused as refused:
        _refused(refused, json_out)
        raise
    finally:
        store.close()
    if json_out:
        print_json(report.as_dict())
    else:
        _print_outcome(report)
    raise typer.Exit(0 if report.ok else 2)


def _standby(preview: Any) -> str:
    return str(preview.checks.get("standby", {}).get("address", "its standby"))


def _refused(refused: Any, json_out: bool) -> None:
    if json_out:
        print_json(refused.report.as_dict())
    else:
        _print_preview(refused.report)


def _print_preview(report: Any) -> None:
    from opsplane.backup.failover import lag_words

    checks = report.checks
    standby, primary = checks.get("standby", {}), checks.get("old_primary", {})
    out.print(f"[bold]failover of {escape(report.database)}[/]: {escape(report.old_primary)} → "
              f"{escape(str(standby.get('address')))}")
    out.print(f"  standby: {_role(standby)}; old primary: {_role(primary)}")
    out.print(f"  lag: {escape(lag_words(checks.get('lag', {})))}")
    bouncer = checks.get("pgbouncer")
    if bouncer:
        out.print(f"  PgBouncer {escape(bouncer['address'])}: {escape(bouncer['database'])} points at "
                  f"{escape(str(bouncer.get('points_at', '?')))}"
                  + (" [yellow](paused)[/]" if bouncer.get("paused") else ""))
    out.print("  plan:")
    for number, step in enumerate(report.plan, start=1):
        out.print(f"    {number}. {escape(step)}")
    for warning in report.warnings:
        out.print(f"  [yellow]![/] {escape(warning)}")
    for refusal in report.refusals:
        out.print(f"  [red]✗[/] {escape(refusal)}")


def _print_outcome(report: Any) -> None:
    for step in report.steps:
        mark = "[green]ok[/]" if step.ok else "[red]failed[/]"
        out.print(f"  {step.name:<9} {step.seconds * 1000:8.0f} ms  {mark}  {escape(step.detail)}")
    verdict = "[green]met[/]" if report.met_target else "[yellow]missed[/]"
    if report.ok:
        out.print(f"{escape(report.database)} failed over to {escape(report.new_primary or '')} in "
                  f"{report.total_seconds:.2f} s (target {report.target_seconds:g} s: {verdict}); "
                  f"recorded as failover {report.record_id}")
    else:
        out.print(f"failover of {escape(report.database)} [red]failed[/] at "
                  f"{escape(report.failed_step or '')} after {report.total_seconds:.2f} s: "
                  f"{escape(report.error or '')}")
    for warning in report.warnings:
        out.print(f"  [yellow]![/] {escape(warning)}")
    if report.inventory_change:
        out.print("Change the inventory (opsplane does not rewrite it):")
        for line in report.inventory_change:
            out.print(f"  {escape(line)}")


def _role(state: dict[str, Any]) -> str:
    if not state.get("reachable"):
        return f"[red]does not answer[/] ({escape(str(state.get('error', '')))})"
    role = ("in recovery, " + ("streaming" if state.get("streaming") else "[yellow]not streaming[/]")
            if state.get("in_recovery") else "a primary")
    return role + (", read-only" if state.get("read_only") else "")


def register(root: typer.Typer) -> None:
    root.command("failover")(failover_command)
