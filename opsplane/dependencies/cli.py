"""`opsplane audit deps|findings|osv-serve`: audit the services' packages for known
vulnerabilities, list the open findings with their due times, and serve an OSV API over local
advisories for a network that cannot reach api.osv.dev."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, err, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock

app = typer.Typer(no_args_is_help=True, help="Audit the services' dependencies for known vulnerabilities.")
SEVERITY = {"critical": "[bold red]critical[/]", "high": "[red]high[/]", "medium": "[yellow]medium[/]",
            "low": "[dim]low[/]"}


def _exit_code(findings: list[dict[str, Any]]) -> int:
    if any(f["overdue"] for f in findings):
        return 2
    return 1 if any(f["due_at"] for f in findings) else 0


def _show(findings: list[dict[str, Any]], *, json_out: bool, header: str | None = None) -> None:
    from datetime import UTC, datetime

    from opsplane.timefmt import span_words

    if json_out:
        print_json({"findings": findings} if header is None else {"summary": header, "findings": findings})
        return
    if header:
        out.print(escape(header))
    if not findings:
        out.print("no open findings")
        return
    now = datetime.now(UTC)
    table = Table("SERVICE", "PACKAGE", "VERSION", "VULNERABILITY", "SEVERITY", "CVSS", "FIXED IN", "DUE")
    for f in findings:
        if f["state"] != "open":
            due = f"fixed {f['fixed_at'][:16].replace('T', ' ')}"
        elif f["due_at"] is None:
            due = "next release"
        elif f["overdue"]:
            late = (now - datetime.fromisoformat(f["due_at"])).total_seconds()
            due = f"[bold red]overdue by {span_words(late)}[/]"
        else:
            due = f"{f['due_at'][:16].replace('T', ' ')} (in {span_words(f['seconds_left'])})"
        table.add_row(escape(f["service"]), escape(f["package"]), escape(f["version"]), escape(f["vuln_id"]),
                      SEVERITY.get(f["severity"], f["severity"]),
                      "-" if f["cvss_score"] is None else f"{f['cvss_score']:.1f}",
                      escape(", ".join(f["fix_versions"]) or "-"), due)
    out.print(table)


def _listed(services: list[str], *, everything: bool) -> list[dict[str, Any]]:
    from opsplane.dependencies import service

    now = SystemClock().now()
    store = open_store()
    try:
        with store.session() as session:
            rows = service.history(session) if everything else service.open_findings(session, services)
            return [service.as_dict(r, now) for r in rows if not services or r.service in services]
    finally:
        store.close()


@app.command("deps")
def deps(ctx: typer.Context,
         services: list[str] = typer.Argument(None, help="Only these services (default: every one)."),
         list_only: bool = typer.Option(False, "--list", help="Audit nothing: show the open findings."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Audit the services' packages now and keep the findings. Exit 2 when a fix is overdue.

    Each service's Python environment (or its pinned requirement files) goes through pip-audit
    against the inventory's OSV API, and its npm project through `npm audit`; each vulnerability
    is rated by its CVSS v3 vector and given the manual's fix time. The run is kept as a
    `deps-audit` report. Exit 0 nothing open, 1 open within its fix time, 2 overdue or no audit ran.
    """
    if list_only:
        findings = _listed(services or [], everything=False)
        _show(findings, json_out=json_out)
        raise typer.Exit(_exit_code(findings))
    from opsplane.dependencies.job import JOB, audit_and_keep
    from opsplane.reports import service as reports

    inventory, base_dir = load_inventory(ctx)
    actor = acting_as(Role.OPERATOR)
    clock = SystemClock()
    store = open_store(create=True)
    try:
        started = clock.now()
        progress = None if json_out else (lambda line: err.print(f"[dim]{escape(line)}[/]"))
        report = audit_and_keep(inventory, base_dir, store, clock, services or [], actor=actor,
                                progress=progress)
        if report is None:
            out.print("nothing to audit: no service names a Python environment, requirement files or an npm "
                      "project (see docs/dependencies.md)")
            return
        with store.session() as session:
            reports.save(session, report, trigger="cli", requested_by=actor, slot=None, started_at=started,
                         now=clock.now())
    finally:
        store.close()
    findings = [f.detail for f in report.findings if "vuln_id" in f.detail]
    if json_out:
        print_json({"job": JOB, "summary": report.summary, "outcome": report.outcome,
                    "audits": report.body["audits"], "findings": findings})
    else:
        for audit in report.body["audits"]:
            if audit["error"]:
                err.print(f"[yellow]not audited:[/] {escape(audit['service'])} ({audit['ecosystem']}): "
                          f"{escape(audit['error'])}")
        if report.failed:
            out.print(escape(report.summary))
            out.print("[red]no audit ran, so nothing is known about the packages[/]: see why above "
                      "(an OSV mirror for a closed network: docs/dependencies.md)")
        else:
            _show(findings, json_out=False, header=report.summary)
    raise typer.Exit(2 if report.failed else _exit_code(findings))


@app.command("findings")
def findings(services: list[str] = typer.Argument(None, help="Only these services."),
             everything: bool = typer.Option(False, "--all", help="Fixed findings too, newest first."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The open findings with their due times. Exit 2 when a fix is overdue, 1 when one is due."""
    found = _listed(services or [], everything=everything)
    _show(found, json_out=json_out)
    raise typer.Exit(_exit_code([f for f in found if f["state"] == "open"]))


@app.command("osv-serve")
def osv_serve(sources: list[Path] = typer.Argument(..., help="Directories and zip files of OSV records."),
              host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
              port: int = typer.Option(8095, "--port", help="Port to listen on (0: a free one)."),
              quiet: bool = typer.Option(False, "--quiet", help="Do not log each request.")) -> None:
    """Serve an OSV-compatible API over local advisories, for a network without api.osv.dev.

    Point `vulnerabilities.osv_url` (or OPSPLANE_OSV_URL) at it. It reads the records once; restart it to
    read new exports. Stops on Ctrl-C or SIGTERM.
    """
    from opsplane.cli_support import exit_zero_on_sigterm
    from opsplane.dependencies.osv import load
    from opsplane.dependencies.osv_server import OsvServer

    advisories = load(sources)
    server = OsvServer(advisories, host, port, log=None if quiet else (lambda line: err.print(escape(line))))
    exit_zero_on_sigterm()
    out.print(f"serving {len(advisories)} advisories on {server.url} (POST /v1/query, /v1/querybatch; "
              "GET /v1/vulns/ID)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit", help="Audit the services' dependencies for known vulnerabilities.")


__all__ = ["app", "register"]
