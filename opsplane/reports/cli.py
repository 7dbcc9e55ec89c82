"""`opsplane report jobs|run|list|show`: the maintenance, security and capacity jobs and their
stored reports, beside the other reports of the `report` group (`report incidents`, ...)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock

OUTCOME = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "critical": "[red]critical[/]",
           "failed": "[red]failed[/]"}
MARK = {"info": "[dim]·[/]", "warning": "[yellow]![/]", "critical": "[red]✗[/]"}


def jobs(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The jobs, what each looks at and when `serve` runs it."""
    from opsplane.reports.jobs import JOBS, planned

    inventory, _ = load_inventory(ctx)
    plan = planned(inventory.jobs) if inventory.jobs is not None else {}
    rows = [{"job": j.name, "about": j.about, "cron": plan.get(j.name, (None, None))[0],
             "timezone": plan.get(j.name, (None, None))[1]} for j in JOBS]
    if json_out:
        print_json(rows)
        return
    table = Table("JOB", "RUNS", "LOOKS AT")
    for row in rows:
        table.add_row(row["job"], f"{row['cron']} ({row['timezone']})" if row["cron"] else "-",
                      escape(str(row["about"])))
    out.print(table)
    if inventory.jobs is None:
        out.print("[dim]serve runs none: add a jobs: section to the inventory[/]")


def run(ctx: typer.Context, job: str = typer.Argument(..., help="The job (`opsplane reports jobs`)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run a job now, keep its report and print it. Exit 0 nothing found, 1 a warning, 2 critical."""
    from opsplane.reports import jobs as registry
    from opsplane.reports import service
    from opsplane.reports.models import exit_code

    inventory, base_dir = load_inventory(ctx)
    found = registry.get(job)
    actor = acting_as(Role.OPERATOR)
    store = open_store(create=True)
    try:
        env = registry.JobEnv(inventory, base_dir, store, SystemClock(), actor=actor)
        row = registry.run_and_save(found, env, trigger="cli", requested_by=actor)
        report = service.as_dict(row, full=True) if row is not None else None
    finally:
        store.close()
    if report is None:
        out.print(f"{job}: the inventory gives it nothing to look at")
        return
    show_report(report, json_out=json_out)
    raise typer.Exit(exit_code(report["outcome"]))


def list_(ctx: typer.Context, job: str = typer.Option(None, "--job", help="Only this job's reports."),
          limit: int = typer.Option(30, "--limit", help="How many."),
          json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stored reports, newest first."""
    from opsplane.reports import service

    store = open_store()
    try:
        with store.session() as session:
            rows = [service.as_dict(r) for r in service.history(session, job=job, limit=limit)]
    finally:
        store.close()
    if json_out:
        print_json(rows)
        return
    table = Table("ID", "JOB", "WHEN", "OUTCOME", "SUMMARY")
    for row in rows:
        table.add_row(str(row["id"]), row["job"], row["ended_at"][:19].replace("T", " "),
                      OUTCOME.get(row["outcome"], row["outcome"]), escape(row["summary"]))
    out.print(table)


def show(ctx: typer.Context, report_id: int = typer.Argument(..., help="The report's id."),
         markdown: bool = typer.Option(False, "--markdown", help="Print the report as Markdown."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One stored report with its findings."""
    from opsplane.reports import service

    store = open_store()
    try:
        with store.session() as session:
            report = service.as_dict(service.get(session, report_id), full=True)
    finally:
        store.close()
    if markdown:
        print(report["markdown"] or report["summary"])
        return
    show_report(report, json_out=json_out)


def show_report(report: dict[str, Any], *, json_out: bool) -> None:
    """A report as JSON, or its summary and findings for a person."""
    if json_out:
        print_json(report)
        return
    out.print(f"[bold]{escape(report['job'])}[/] #{report['id']}: {OUTCOME.get(report['outcome'], '')} "
              f"{escape(report['summary'])}")
    for finding in report.get("findings", []):
        out.print(f"  {MARK.get(finding['severity'], '')} {escape(finding['subject'])}: "
                  f"{escape(finding['what'])}")


def register(report_app: typer.Typer) -> None:
    """Mount the commands on `opsplane report`."""
    report_app.command("jobs")(jobs)
    report_app.command("run")(run)
    report_app.command("list")(list_)
    report_app.command("show")(show)
