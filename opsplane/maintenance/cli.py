"""`opsplane db report|vacuum|analyze|terminate-idle|pools`: database care beside the store's
own `db upgrade|current`. Reads need no role; the actions need the operator role, ask first
(`--yes` skips the question) and are each recorded as an event."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError

DATABASE = typer.Argument(
    ..., metavar="DATABASE", help="The database, by its name in the inventory's databases."
)
MARK = {"info": "[dim]·[/]", "warning": "[yellow]![/]", "critical": "[red]✗[/]"}


class NotConfirmed(UsageError):
    """The operator said no: nothing was changed."""


def report_command(
    ctx: typer.Context,
    database: str = DATABASE,
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the report as Markdown."),
) -> None:
    """Vacuum, bloat, indexes, slow queries, locks and sessions of DATABASE (read only).

    Exit 0 nothing found, 1 a warning, 2 critical."""
    from opsplane.maintenance.flows import report_one
    from opsplane.reports.models import exit_code

    inventory, _ = load_inventory(ctx)
    with _busy(f"reading {database}'s statistics", json_out or markdown):
        report = report_one(inventory, database, os.environ)
    if json_out:
        print_json(
            {
                "summary": report.summary,
                "outcome": report.outcome,
                "findings": [f.as_dict() for f in report.findings],
                **report.body,
            }
        )
    elif markdown:
        print(report.markdown, end="")
    else:
        _print_report(report)
    raise typer.Exit(exit_code(report.outcome))


def _busy(what: str, quiet: bool) -> Any:
    import contextlib

    return contextlib.nullcontext() if quiet or not out.is_terminal else out.status(what)


def _print_report(report: Any) -> None:
    body = report.body
    server = body["server"]
    out.print(
        f"[bold]{escape(body['database'])}[/] {escape(body['address'])}, PostgreSQL {server['version']}: "
        f"{server['connections']}/{server['max_connections']} connections, "
        f"transaction id age {server['database_xid_age']:,}"
    )
    table = Table("TABLE", "LIVE", "DEAD", "DEAD %", "VACUUMED", "ANALYZED", "XID AGE", "BLOAT (EST.)")
    from opsplane.maintenance.report import _ago
    from opsplane.maintenance.tables import _size

    for t in body["tables"][:30]:
        bloat = "-" if t["bloat_bytes"] is None else f"{_size(t['bloat_bytes'])} ({t['bloat_ratio']:.0%})"
        table.add_row(
            escape(t["table"]),
            str(t["live"]),
            str(t["dead"]),
            f"{t['dead_ratio']:.0%}",
            _ago(t["vacuum_age_s"]),
            _ago(t["analyze_age_s"]),
            f"{t['xid_age']:,}",
            bloat,
        )
    out.print(table)
    statements = body["statements"]
    if statements["note"]:
        out.print(f"[yellow]slow queries:[/] {escape(statements['note'])}")
    else:
        top = Table("CALLS", "TOTAL MS", "MEAN MS", "QUERY (by total time)")
        for r in statements["by_total"][:5]:
            top.add_row(
                str(r["calls"]), f"{r['total_ms']:.1f}", f"{r['mean_ms']:.2f}", escape(r["query"][:100])
            )
        out.print(top)
    if body["locks"]:
        out.print("blocking locks:")
    for line in _tree_lines(body["locks"], 0):
        out.print(line)
    for s in body["idle_in_transaction"]:
        out.print(f"idle in transaction: pid {s['pid']} ({escape(str(s['user']))}) for {s['idle_s']:.0f} s")
    out.print(f"{escape(report.summary)}")
    for finding in report.findings:
        out.print(f"  {MARK.get(finding.severity, '')} {escape(finding.subject)}: {escape(finding.what)}")


def _tree_lines(nodes: list[dict[str, Any]], depth: int) -> list[str]:
    lines = []
    for n in nodes:
        waited = f" waiting {n['waiting_s']:.0f} s" if n.get("waiting_s") is not None else ""
        lines.append(f"{'  ' * (depth + 1)}pid {n['pid']}{waited}: {escape(str(n.get('query', ''))[:100])}")
        lines += _tree_lines(n["blocks"], depth + 1)
    return lines


def _confirm(question: str, yes: bool) -> None:
    if not yes and not typer.confirm(question, default=False):
        raise NotConfirmed("not confirmed: nothing was changed")


def vacuum_command(
    ctx: typer.Context,
    database: str = DATABASE,
    table: str = typer.Option(None, "--table", help="Only this table (`name` or `schema.name`)."),
    analyze: bool = typer.Option(
        False, "--analyze", help="VACUUM (ANALYZE): refresh the planner's statistics too."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first."),
) -> None:
    """VACUUM a table or the whole database (operator role); recorded as an event."""
    _maintain(ctx, database, "vacuum", table, analyze, yes)


def analyze_command(
    ctx: typer.Context,
    database: str = DATABASE,
    table: str = typer.Option(None, "--table", help="Only this table (`name` or `schema.name`)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first."),
) -> None:
    """ANALYZE a table or the whole database (operator role); recorded as an event."""
    _maintain(ctx, database, "analyze", table, False, yes)


def _maintain(
    ctx: typer.Context, database: str, command: str, table: str | None, analyze: bool, yes: bool
) -> None:
    from opsplane.maintenance.flows import run_maintenance
    from opsplane.maintenance.targets import server

    inventory, _ = load_inventory(ctx)
    target = server(inventory, database, os.environ)
    actor = acting_as(Role.OPERATOR)
    what = f"{command.upper()}{' (ANALYZE)' if analyze else ''} {table or 'every table'}"
    _confirm(f"Run {what} on {target.address}?", yes)
    store = open_store(create=True)
    try:
        with _busy(f"{what} on {database}", False):
            ran = run_maintenance(
                store, SystemClock(), target, command=command, table=table, analyze=analyze, actor=actor
            )
    finally:
        store.close()
    out.print(f"{database}: {escape(ran)} done")


def terminate_idle_command(
    ctx: typer.Context,
    database: str = DATABASE,
    older_than: str = typer.Option(
        ..., "--older-than", help="Idle in a transaction longer than this (e.g. 10m)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the sessions; end none."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """End sessions idle in a transaction longer than --older-than (operator role)."""
    from opsplane.config.types import parse_duration
    from opsplane.drivers import pgstats
    from opsplane.maintenance.flows import terminate_idle
    from opsplane.maintenance.targets import server

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than {older_than!r}: {exc}") from None
    inventory, _ = load_inventory(ctx)
    target = server(inventory, database, os.environ)
    actor = None if dry_run else acting_as(Role.OPERATOR)
    sessions = pgstats.idle_in_transaction(target, seconds)
    listed = [
        {
            "pid": s["pid"],
            "user": s["user"],
            "application": s["application"],
            "client": s["client"],
            "idle_s": round(float(s["state_age"]), 1),
            "query": s["query"],
        }
        for s in sessions
    ]
    if not json_out or dry_run:
        if not json_out:
            for s in listed:
                out.print(
                    f"pid {s['pid']} {escape(str(s['user']))} {escape(s['application'] or '-')}: idle in a "
                    f"transaction for {s['idle_s']:.0f} s, last: {escape(str(s['query'])[:80])}"
                )
            if not listed:
                out.print(f"{database}: no session idle in a transaction for longer than {older_than}")
    if dry_run:
        if json_out:
            print_json({"database": database, "dry_run": True, "sessions": listed, "terminated": []})
        return
    if not sessions:
        if json_out:
            print_json({"database": database, "dry_run": False, "sessions": [], "terminated": []})
        return
    _confirm(f"End these {len(sessions)} sessions on {target.address}?", yes)
    store = open_store(create=True)
    try:
        assert actor is not None
        ended = terminate_idle(store, SystemClock(), target, sessions, older_than=seconds, actor=actor)
    finally:
        store.close()
    if json_out:
        print_json({"database": database, "dry_run": False, "sessions": listed, "terminated": ended})
    else:
        out.print(
            f"{database}: ended {len(ended)} of {len(sessions)} sessions"
            + (" (the others ran a statement meanwhile, or ended)" if len(ended) < len(sessions) else "")
        )


def pools_command(
    ctx: typer.Context,
    database: str = typer.Argument(None, metavar="[DATABASE]", help="Only the PgBouncers in front of it."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.0, help="How long to watch each PgBouncer."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Advice on PgBouncer's pool sizes from what it measures (its pgbouncer checks).

    Exit 0 the pools fit, 1 a pool to change, 2 one could not be read or PostgreSQL has no room."""
    from opsplane.maintenance.flows import pools_report
    from opsplane.reports.models import exit_code

    inventory, _ = load_inventory(ctx)
    with _busy(f"watching PgBouncer for {seconds:g} s", json_out):
        report = pools_report(inventory, os.environ, only=database, seconds=seconds)
    if report is None:
        raise UsageError(
            "no database of the inventory has a pgbouncer check: add one "
            "({type: pgbouncer, port: 6432, ...}) to say where its PgBouncer is"
        )
    if json_out:
        print_json(
            {
                "summary": report.summary,
                "outcome": report.outcome,
                "findings": [f.as_dict() for f in report.findings],
                **report.body,
            }
        )
    else:
        for look in report.body["bouncers"]:
            out.print(
                f"[bold]{escape(look['address'])}[/] in front of {escape(look['database'])}: "
                f"{look['looks']} looks over {look['seconds']:.0f} s"
            )
            table = Table("POOL", "SIZE", "PEAK WAITING", "PEAK ACTIVE", "BUSY (AVG)", "AVG WAIT MS",
                          "XACT/S")
            for p in look["pools"]:
                table.add_row(
                    escape(p["pool"]),
                    str(p["pool_size"]),
                    str(p["peak_waiting"]),
                    str(p["peak_active"]),
                    f"{p['busy_servers']:.1f}",
                    "-" if p["avg_wait_ms"] is None else f"{p['avg_wait_ms']:.1f}",
                    f"{p['transactions_per_s']:.0f}",
                )
            out.print(table)
            for line in look["advice"]:
                out.print(f"  → {escape(line)}")
        for address, why in report.body["failures"].items():
            out.print(f"[red]{escape(address)}[/]: {escape(why)}")
    raise typer.Exit(exit_code(report.outcome))


def register(db_app: typer.Typer) -> None:
    """Mount the commands on `opsplane db`."""
    db_app.command("report")(report_command)
    db_app.command("vacuum")(vacuum_command)
    db_app.command("analyze")(analyze_command)
    db_app.command("terminate-idle")(terminate_idle_command)
    db_app.command("pools")(pools_command)
