"""`opsplane report access`: the access review of API tokens and dashboard sessions, now."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.cli_support import open_store, out, print_json
from opsplane.clock import SystemClock

MARK = {"info": "[dim]·[/]", "warning": "[yellow]![/]", "critical": "[red]✗[/]"}


def access(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Review API tokens: role, creator, last use, expiry, sessions; flag unused and admin ones.

    A token unused for 90 days, or never used and older, is flagged to revoke (exit 1); admin
    tokens are listed for review. The `access-review` job keeps the same review each quarter.
    """
    from opsplane.reports.models import exit_code
    from opsplane.security.access import as_report, collect, review

    now = SystemClock().now()
    store = open_store()
    try:
        with store.session() as session:
            found = review(collect(session), now)
    finally:
        store.close()
    report = as_report(found, now)
    if json_out:
        print_json({**found.as_dict(now), "summary": report.summary, "outcome": report.outcome})
    else:
        table = Table("TOKEN", "ROLE", "CREATED", "BY", "LAST USED", "EXPIRES", "SESSIONS", "FLAGS")
        for row in found.as_dict(now)["tokens"]:
            table.add_row(escape(row["name"]), row["role"], row["created_at"][:10], escape(row["created_by"]),
                          (row["last_used_at"] or "never")[:16].replace("T", " "),
                          (row["expires_at"] or "never")[:10], str(row["dashboard_sessions"]),
                          escape("; ".join(row["flags"])) or "-")
        out.print(table)
        out.print(escape(report.summary))
        for finding in report.findings:
            if finding.severity != "info":
                out.print(f"  {MARK[finding.severity]} {escape(finding.subject)}: {escape(finding.what)}")
    raise typer.Exit(exit_code(report.outcome))


def register(report_app: typer.Typer) -> None:
    """Mount `opsplane report access`."""
    report_app.command("access")(access)
