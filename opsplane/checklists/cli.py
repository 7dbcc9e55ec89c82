"""`opsplane checklist list|run|history|show`: the operator's lists, run now or read back."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock

app = typer.Typer(no_args_is_help=True)
_MARK = {"ok": "[green]✓[/]", "warned": "[yellow]![/]", "failed": "[red]✗[/]", "timed_out": "[red]✗[/]"}
_STATE = {"ok": "[green]all ok[/]", "warned": "[yellow]warned[/]", "failed": "[red]failed[/]",
          "running": "[yellow]running[/]"}


def _catalog(ctx: typer.Context) -> tuple[Any, Any, dict[str, Any]]:
    from opsplane.checklists.loader import catalog

    inventory, base_dir = load_inventory(ctx)
    return inventory, base_dir, catalog(inventory, base_dir, inventory_file=config_path(ctx))


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The checklists, their items and when `serve` runs them."""
    inventory, _, found = _catalog(ctx)
    planned = inventory.checklists.planned() if inventory.checklists is not None else {}
    rows = [{"name": n, "title": c.runbook.title, "items": len(c.runbook.steps),
             "cron": planned.get(n, (None, None))[0], "timezone": planned.get(n, (None, None))[1],
             "file": c.file} for n, c in found.items()]
    if json_out:
        print_json(rows)
        return
    table = Table("NAME", "TITLE", "ITEMS", "RUNS", "FILE")
    for row in rows:
        runs = f"{row['cron']} ({row['timezone']})" if row["cron"] else "-"
        table.add_row(row["name"], escape(row["title"]), str(row["items"]), runs, row["file"])
    out.print(table)
    if inventory.checklists is None:
        out.print("[dim]serve runs none: add a checklists: section to the inventory[/]")


@app.command()
def run(ctx: typer.Context, name: str = typer.Argument(..., help="The checklist."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run a checklist now and print it: ✓ ok, ! warned, ✗ failed, with each item's figures.

    Exit 0 when every item is ok, 1 when one warned, 2 when one failed."""
    from opsplane.checklists import flows, service
    from opsplane.checklists.loader import get
    from opsplane.runbooks.flows import LivePlatform

    inventory, base_dir = load_inventory(ctx)
    checklist = get(inventory, base_dir, name, inventory_file=config_path(ctx))
    actor = acting_as(Role.RESPONDER)
    clock = SystemClock()
    store = open_store(create=True)
    try:
        platform = LivePlatform(inventory, base_dir=base_dir, store=store, clock=clock)
        run_id = flows.run(store, platform, checklist, clock=clock, trigger="cli", requested_by=actor)
        report = flows.report(store, run_id)
    finally:
        store.close()
    if json_out:
        print_json(report)
    else:
        _print(report, checklist.runbook)
    raise typer.Exit(service.exit_code(report["state"]))


@app.command()
def history(ctx: typer.Context, name: str = typer.Argument(None, help="Only this checklist."),
            limit: int = typer.Option(30, "--limit", help="How many runs."),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Recent checklist runs, newest first, with the count of items ok, warned and failed."""
    from opsplane.checklists import service

    store = open_store()
    try:
        with store.session() as session:
            rows = [service.as_dict(r) for r in service.history(session, checklist=name, limit=limit)]
    finally:
        store.close()
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("no checklist runs yet: `opsplane checklist run NAME`, or serve with a checklists: section")
        return
    table = Table("RUN", "CHECKLIST", "STARTED", "BY", "STATE", "OK", "WARNED", "FAILED", "NOT OK")
    for row in rows:
        table.add_row(str(row["id"]), row["checklist"], row["started_at"][:16].replace("T", " "),
                      row["trigger"] if row["trigger"] == "schedule" else row["requested_by"],
                      _STATE.get(row["state"], row["state"]), str(row["ok"]), str(row["warned"]),
                      str(row["failed"]), ", ".join(i["step"] for i in row["not_ok"]) or "-")
    out.print(table)


@app.command()
def show(ctx: typer.Context, run_id: int = typer.Argument(..., help="The checklist run."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One checklist run as its report: each item with what it found. Exit as `run` does."""
    from opsplane.checklists import flows, service
    from opsplane.runbooks import service as runs

    store = open_store()
    try:
        report = flows.report(store, run_id)
        with store.session() as session:
            runbook = runs.runbook_of(runs.get(session, report["run"]))
    finally:
        store.close()
    if json_out:
        print_json(report)
    else:
        _print(report, runbook)
    raise typer.Exit(service.exit_code(report["state"]))


def _print(report: dict[str, Any], runbook: Any) -> None:
    when = report["started_at"][:16].replace("T", " ")
    out.print(f"[bold]{escape(runbook.title)}[/] (run {report['id']}, {when} UTC, {report['trigger']})")
    for item in report["items"]:
        step = runbook.step(item["step"])
        lines = (item["output"] or "").strip().splitlines()
        if item["kind"] == "note":
            out.print(f"  [dim]□ {escape(step.text)}[/]")
            continue
        mark = _MARK.get(item["outcome"] or "", "[red]✗[/]")
        out.print(f"  {mark} {escape(step.title or step.id)}")
        for line in lines[:12]:
            out.print(f"      [dim]{escape(line)}[/]")
        if len(lines) > 12:
            out.print(f"      [dim]… {len(lines) - 12} more lines[/]")
    state = _STATE.get(report["state"], report["state"])
    out.print(f"{state}: {report['ok']} ok, {report['warned']} warned, {report['failed']} failed")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="checklist", help="The daily, weekly and monthly checklists: run, history.")


__all__ = ["app", "register"]
