"""`opsplane report kpi`, `opsplane report capacity` and `opsplane loadtest`."""

from __future__ import annotations

import asyncio
import os
from typing import Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, err, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock

STATUS = {"met": "[green]met[/]", "missed": "[yellow]missed[/]", "warning": "[yellow]warning[/]",
          "critical": "[red]critical[/]", "unknown": "[dim]no data[/]", "ok": "[green]ok[/]",
          "later": "[green]later[/]", "over": "[red]over now[/]", "learning": "[dim]learning[/]"}


def kpi(ctx: typer.Context,
        window: str = typer.Option(None, "--window", help="The span of the rates, e.g. 1h (default: "
                                   "capacity.window)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The KPIs against their targets. Exit 0 all met, 1 a warning, 2 critical."""
    from opsplane.capacity.kpi import kpi_report
    from opsplane.config.types import parse_duration
    from opsplane.errors import UsageError
    from opsplane.reports.jobs import JobEnv
    from opsplane.reports.models import exit_code

    inventory, base_dir = load_inventory(ctx)
    try:
        span = parse_duration(window) if window else None
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    # PromQL only: the configured Prometheus or serve's API; no store is read
    env = JobEnv(inventory, base_dir, cast(Any, None), SystemClock())
    report = kpi_report(env, window=span)
    if json_out:
        print_json({"outcome": report.outcome, "summary": report.summary, **report.body})
    else:
        table = Table("KPI", "VALUE", "TARGET", "WARNING", "CRITICAL", "STATUS")
        from opsplane.capacity.kpi import shown
        from opsplane.capacity.models import resolve_kpis

        kpis = {k.name: k for k in resolve_kpis(inventory.capacity)}
        for row in report.body["kpis"]:
            k = kpis[row["name"]]
            table.add_row(f"{k.name} [dim]{escape(k.about)}[/]", row["shown"], shown(k, k.target),
                          shown(k, k.warning), shown(k, k.critical), STATUS[row["status"]])
        out.print(table)
        out.print(escape(report.summary))
    raise typer.Exit(exit_code(report.outcome))


def capacity(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each recorded resource's trend, time to its trigger and scaling advice. Exit 0, 1 or 2."""
    from opsplane.capacity.models import CapacitySettings
    from opsplane.capacity.report import days, forecasts, report
    from opsplane.reports.models import exit_code

    inventory, _ = load_inventory(ctx)
    settings = inventory.capacity or CapacitySettings()
    store = open_store()
    try:
        with store.session() as session:
            found = forecasts(session, settings, now=SystemClock().now())
    finally:
        store.close()
    result = report(found)
    if json_out:
        print_json({"outcome": result.outcome, "summary": result.summary, **result.body})
        raise typer.Exit(exit_code(result.outcome))
    table = Table("RESOURCE", "NOW", "TRIGGER", "FIT", "TIME TO TRIGGER", "STATUS")
    for f in found:
        when = (days(f.time_to_threshold()) if f.crosses_at is not None
                else "-" if f.threshold is None or f.choice is None else "not within the horizon")
        table.add_row(f.label, f.shown(f.current), f.shown(f.threshold),
                      f.choice.fit.kind if f.choice else "-", when, STATUS.get(f.status, f.status))
    out.print(table)
    out.print(escape(result.summary))
    for finding in result.findings:
        if finding.severity != "info":
            out.print(f"  {escape(finding.subject)}: {escape(finding.what)}")
    if inventory.capacity is None:
        out.print("[dim]serve records nothing: add a capacity: section to the inventory[/]")
    raise typer.Exit(exit_code(result.outcome))


def loadtest(
    ctx: typer.Context,
    users: int = typer.Option(..., "--users", min=1, help="Shoppers at once."),
    duration: str = typer.Option(..., "--duration", help="How long, e.g. 30s or 5m."),
    env: str = typer.Option("staging", "--env", help="The environment to load (never production)."),
    target: str = typer.Option(None, "--target", help="The service serving the shop's public API "
                               "(default: the gateway)."),
    think_time: float = typer.Option(0.5, "--think-time", min=0.0,
                                     help="Mean seconds between a user's steps."),
    seed: int = typer.Option(None, "--seed", help="Seed for a repeatable run."),
    i_know: bool = typer.Option(False, "--i-know", help="Load production anyway."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Load the shop with N users for a while and judge it against the KPI targets.

    Measures latency percentiles, throughput and errors from the users' side, then reads the
    KPIs over the run, keeps the report (`opsplane report list --job loadtest`) and prints it.
    Exit 0 all met, 1 a warning, 2 critical."""
    from opsplane.capacity import loadtest as lt
    from opsplane.config.types import parse_duration
    from opsplane.errors import UsageError
    from opsplane.reports import service
    from opsplane.reports.cli import show_report
    from opsplane.reports.models import exit_code

    inventory, base_dir = load_inventory(ctx)
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None
    name, url = lt.check_request(inventory, env=env, target=target, i_know=i_know)
    actor = acting_as(Role.OPERATOR)
    clock = SystemClock()
    err.print(f"loading {name} at {url} ({env}) with {users} users for {seconds:g} s")
    started = clock.now()
    figures, results, problem, window = asyncio.run(_run(inventory, base_dir, env, url, users, seconds,
                                                         think_time, seed))
    report = lt.judge_run(env=env, target=name, users=users, duration=seconds, figures=figures,
                          server=results, server_problem=problem, window=window)
    store = open_store(create=True)
    try:
        with store.session() as session:
            row = service.save(session, report, trigger="cli", requested_by=actor, slot=None,
                               started_at=started, now=clock.now())
            shown = service.as_dict(row, full=True)
    finally:
        store.close()
    show_report(shown, json_out=json_out)
    raise typer.Exit(exit_code(shown["outcome"]))


async def _run(inventory: Any, base_dir: Any, env: str, url: str, users: int, seconds: float,
               think_time: float, seed: int | None) -> tuple[Any, Any, str | None, float]:
    """The load with progress on stderr, and the KPIs over its span."""
    import math

    from opsplane.capacity import loadtest as lt
    from opsplane.reports.jobs import JobEnv

    # The KPIs over the run: from the configured Prometheus, from `serve`'s API when a token is
    # given (it scrapes instances behind a proxy too), else from scrapes of the load test's own.
    asks = inventory.metrics.source == "prometheus" or bool(os.environ.get("OPSPLANE_TOKEN"))
    own = None if asks else lt.OwnScrapes(inventory, env)
    stop = asyncio.Event()
    scraping = None
    if own is not None:
        await own.once()
        scraping = asyncio.ensure_future(own.during(stop, min(lt.SCRAPE_EVERY, seconds / 5)))
    try:
        figures = await lt.drive(url, users=users, duration=seconds, think_time=think_time, seed=seed,
                                 on_progress=lambda p: err.print(p.line(), highlight=False))
    finally:
        stop.set()
        if scraping is not None:
            await scraping
    window = float(math.ceil(seconds + 2 * lt.SCRAPE_EVERY))
    problem = None
    results = None
    try:
        if own is not None:
            await own.once()
            if not own.targets:
                raise RuntimeError("no component has metrics_path at an address of its own (those behind "
                                   "a proxy are scraped per instance by serve: set OPSPLANE_TOKEN to a "
                                   "viewer token to read the KPIs from serve's API)")
            source = own.scraper.locked_source()
            job_env = JobEnv(inventory, base_dir, cast(Any, None), SystemClock(), samples=lambda: source)
        else:
            job_env = JobEnv(inventory, base_dir, cast(Any, None), SystemClock(), environ=dict(os.environ))
        results = await asyncio.to_thread(lt.platform_kpis, inventory, job_env.query, window)
    except Exception as exc:  # Prometheus away, nothing to scrape: the client's figures stand alone
        problem = str(exc)
    finally:
        if own is not None:
            await own.close()
    return figures, results, problem, window


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Mount `loadtest` on the root and `kpi`, `capacity` on `opsplane report`."""
    report_app.command("kpi")(kpi)
    report_app.command("capacity")(capacity)
    app.command("loadtest")(loadtest)
