"""`opsplane slo list|status|report`: the inventory's SLOs, where each stands now (SLI, budget
left, burn rates by window) and the monthly review, from what `serve` recorded in the store.

Reads only: they need no role and never create the store (docs/decisions/0013). `slo status`
exits 0 when every SLO is fine, 1 when a burn alert's thresholds are passed or less than a
quarter of a budget is left, 2 when a budget is spent, 3 on a usage error."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.cli_support import load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="SLOs: error budgets, burn rates, the monthly review.")
EXIT = {"ok": 0, "unknown": 0, "warning": 1, "exhausted": 2}
STYLE = {"ok": "green", "warning": "yellow", "exhausted": "red", "unknown": "dim"}


def _chosen(ctx: typer.Context, name: str | None) -> tuple[Any, dict[str, Any]]:
    inventory, _ = load_inventory(ctx)
    slos = dict(inventory.slos)
    if name is not None:
        if name not in slos:
            known = ", ".join(slos) or "none in the inventory"
            raise UsageError(f"no SLO named {name!r}; the SLOs: {known}")
        slos = {name: slos[name]}
    return inventory, slos


def _pct(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.{digits}f}".rstrip("0").rstrip(".") + "%"


@app.command("list")
def list_slos(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The SLOs of the inventory: service, SLI, objective, window and budgeting."""
    _, slos = _chosen(ctx, None)
    listed = [{"name": name, "service": slo.service, "sli": slo.sli.kind, "objective": slo.objective,
               "window": _window(slo), "budgeting": slo.budgeting, "deploy_gate": slo.deploy_gate}
              for name, slo in slos.items()]
    if json_out:
        print_json(listed)
        return
    if not listed:
        out.print("no SLOs in the inventory; docs/slo.md shows how to write them")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "service", "sli", "objective", "window", "budgeting", "deploy gate"):
        table.add_column(column, no_wrap=True)
    for item in listed:
        table.add_row(item["name"], item["service"], item["sli"], _pct(item["objective"]), item["window"],
                      item["budgeting"], "yes" if item["deploy_gate"] else "no")
    out.print(table)


def _window(slo: Any) -> str:
    from opsplane.config.types import format_duration

    if slo.calendar is not None:
        return f"calendar {slo.calendar.unit} ({slo.calendar.timezone})"
    return f"rolling {format_duration(slo.rolling_seconds)}"


@app.command("status")
def status_command(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="[NAME]", help="Only this SLO."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each SLO now: SLI, budget left, burn rates by window, and its state with the reason.

    Exit 0 ok, 1 a burn alert's thresholds passed or less than 25 % of a budget left, 2 a
    budget spent, 3 usage."""
    from opsplane.slo import service

    _, slos = _chosen(ctx, name)
    store = open_store()
    try:
        with store.session() as session:
            found = service.statuses(session, slos, now=SystemClock().now())
    finally:
        store.close()
    if json_out:
        print_json([status.as_json() for status in found])
    elif not found:
        out.print("no SLOs in the inventory; docs/slo.md shows how to write them")
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("name", "service", "objective", "sli", "budget left", "burn 1h", "burn 6h", "burn 3d",
                       "state"):
            table.add_column(column, no_wrap=True)
        for status in found:
            style = STYLE[status.state]
            table.add_row(status.name, status.service, _pct(status.objective), _pct(status.sli),
                          _pct(status.remaining, 1), f"{status.burn_rates['1h']:.2f}",
                          f"{status.burn_rates['6h']:.2f}", f"{status.burn_rates['3d']:.2f}",
                          f"[{style}]{status.state}[/]")
        out.print(table)
        for status in found:
            if status.state != "ok":
                out.print(f"[{STYLE[status.state]}]{status.name}[/]: {escape(status.reason)}")
    raise typer.Exit(max((EXIT[status.state] for status in found), default=0))


@app.command("report")
def report_command(
    ctx: typer.Context,
    month: str | None = typer.Option(None, "--month", metavar="YYYY-MM",
                                     help="The month to review; the last whole month when not given."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    markdown_out: bool = typer.Option(False, "--markdown", help="Print the review as Markdown."),
) -> None:
    """The monthly SLO review: objective, achieved, budget used, worst days, incidents, deploys.

    Per SLO, for the month, with the incidents and deploys of its service in that month."""
    from opsplane.slo.report import last_month, markdown, month_report, parse_month

    if json_out and markdown_out:
        raise UsageError("give --json or --markdown, not both")
    year, number = parse_month(month or last_month(SystemClock().now()))
    _, slos = _chosen(ctx, None)
    store = open_store()
    try:
        with store.session() as session:
            months = month_report(session, slos, year=year, month=number)
    finally:
        store.close()
    if json_out:
        print_json({"month": f"{year:04d}-{number:02d}", "slos": [m.as_json() for m in months]})
        return
    if markdown_out:
        out.print(markdown(months, year=year, month=number), markup=False, highlight=False)
        return
    table = Table(title=f"SLO review {year:04d}-{number:02d}", box=None, pad_edge=False)
    for column in ("name", "service", "objective", "achieved", "budget used", "met", "worst day",
                   "incidents", "deploys"):
        table.add_column(column, no_wrap=True)
    for m in months:
        met = "-" if m.met is None else "[green]yes[/]" if m.met else "[red]no[/]"
        worst = f"{m.worst_days[0].day} ({_pct(m.worst_days[0].sli)})" if m.worst_days else "-"
        table.add_row(m.name, m.service, _pct(m.objective), _pct(m.achieved),
                      "-" if m.budget_used is None else f"{m.budget_used:.0%}", met, worst,
                      str(len(m.incidents)), str(len(m.deploys)))
    out.print(table)


def register(root: typer.Typer) -> None:
    from opsplane.slo.openslo_cli import app as openslo

    app.add_typer(openslo, name="openslo", help="The SLOs as OpenSLO v1 files, out and in.")
    root.add_typer(app, name="slo", help="SLOs: error budgets, burn rates, the monthly review.")
