"""`opsplane cache report|flush|warm`: the inventory's Redis caches looked at, flushed with
their name typed back, and warmed through the services that fill them."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.markup import escape

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, err, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError

app = typer.Typer(no_args_is_help=True)

MARK = {"info": "[dim]·[/]", "warning": "[yellow]![/]", "critical": "[red]✗[/]"}


@app.command()
def report(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="[NAME]", help="One cache (default: every cache)."),
    sample: int = typer.Option(1000, "--sample", min=0,
                               help="Keys sampled per database for big keys (0: none)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Memory, fragmentation, hit ratio, evictions, keyspace and big keys of the caches.

    Big keys come from a sample (SCAN of up to --sample keys per database, each measured by
    MEMORY USAGE), not from every key. Exit 0 nothing found, 1 a warning, 2 critical."""
    from opsplane.cache import analysis
    from opsplane.cache.flows import cache_report
    from opsplane.reports.models import exit_code

    inventory, _ = load_inventory(ctx)
    if not inventory.caches:
        out.print("the inventory has no caches")
        return
    found = cache_report(inventory, os.environ, name, sample_size=sample)
    if json_out:
        print_json({"outcome": found.outcome, "summary": found.summary, **found.body,
                    "findings": [f.as_dict() for f in found.findings]})
    else:
        for row in found.body["caches"]:
            out.print(f"[bold]{escape(row['cache'])}[/] {escape(row.get('address') or '')}")
            for label, value in analysis.describe(row):
                out.print(f"  {escape(label)}: {escape(value)}")
        for finding in found.findings:
            out.print(f"{MARK[finding.severity]} {escape(finding.subject)}: {escape(finding.what)}")
        out.print(escape(found.summary))
    raise typer.Exit(exit_code(found.outcome))


def _confirm(name: str, db: int, yes_i_mean: str | None) -> None:
    """The cache's name typed back, or given by --yes-i-mean; anything else refuses."""
    if yes_i_mean is not None:
        if yes_i_mean != name:
            raise UsageError(f"--yes-i-mean {yes_i_mean!r} does not name the cache {name!r}; "
                             "nothing was deleted")
        return
    try:
        typed = input(f"Every key of database {db} of cache {name} is deleted. Type {name} to go on: ")
    except EOFError:
        raise UsageError(f"flushing {name} needs its name typed at a terminal, or --yes-i-mean {name}; "
                         "nothing was deleted") from None
    if typed.strip() != name:
        raise UsageError(f"not confirmed: expected {name!r}; nothing was deleted")


@app.command()
def flush(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="The cache."),
    db: int = typer.Option(0, "--db", min=0, help="The Redis database to flush."),
    yes_i_mean: str = typer.Option(None, "--yes-i-mean", metavar="NAME",
                                   help="The cache's name, for scripts: no question asked."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete every key of one database of a cache (operator role; its name typed back).

    Recorded as a `cache.flushed` event with who flushed it and how many keys it dropped.
    Warm it again with `opsplane cache warm NAME`."""
    from opsplane.cache.client import cache_names
    from opsplane.cache.flows import flush as do_flush

    inventory, _ = load_inventory(ctx)
    cache_names(inventory, name)
    actor = acting_as(Role.OPERATOR)
    _confirm(name, db, yes_i_mean)
    store = open_store(create=True)
    try:
        done = do_flush(store, inventory, name, db=db, actor=actor, clock=SystemClock(), environ=os.environ)
    finally:
        store.close()
    if json_out:
        print_json({"cache": done.cache, "address": done.address, "db": done.db, "keys": done.keys})
        return
    out.print(f"flushed db {done.db} of {escape(name)} ({escape(done.address)}): {done.keys} keys deleted; "
              f"`opsplane cache warm {escape(name)}` loads the hot keys again")


@app.command()
def warm(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="The cache."),
    service: str = typer.Option(None, "--service",
                                help="Only this service (default: every one that uses it)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Load a cache's hot keys through the services that use it (operator role).

    Each service that depends on the cache and runs with its admin token is asked, on one of its
    running instances, to load what it reads most (the shop's catalog: the product list and its
    top products). Recorded as a `cache.warmed` event."""
    from opsplane.cache.flows import warm as do_warm
    from opsplane.cache.flows import warmers
    from opsplane.drivers.runtime.factory import open_runtime

    inventory, base_dir = load_inventory(ctx)
    actor = acting_as(Role.OPERATOR)
    running: dict[str, list[int]] = {}
    if inventory.runs_services:
        for status in open_runtime(inventory, base_dir=base_dir, actor=actor).status():
            if status.state == "running" and status.port and "@" not in status.service:
                running.setdefault(status.service, []).append(status.port)
    found = warmers(inventory, name, os.environ, running, service)
    store = open_store(create=True)
    try:
        result: dict[str, Any] = do_warm(store, name, found, actor=actor, clock=SystemClock())
    finally:
        store.close()
    if json_out:
        print_json(result)
    else:
        for svc, said in result["warmed"].items():
            out.print(f"{escape(svc)} loaded {said.get('keys', '?')} keys into {escape(name)}")
        for problem in result["problems"]:
            err.print(f"[yellow]not reached:[/] {escape(problem)}")
    if result["problems"]:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cache", help="Redis caches: the report, flush (name typed back), warm-up.")


__all__ = ["app", "register"]
