"""`opsplane health`: the health-check script of the production runbook."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from opsplane.cli_support import config_path, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.loader import load
from opsplane.health.flows import probe_all
from opsplane.health.report import as_data, as_table
from opsplane.health.status import assess, overall
from opsplane.health.targets import check_targets, environment_name


def health(
    ctx: typer.Context,
    detailed: bool = typer.Option(False, "--detailed", "-d", help="Show every check's figures."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh in place until Ctrl-C."),
    interval: float = typer.Option(
        10.0, "--interval", "-n", min=0.5, help="Seconds between refreshes with --watch."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    service: list[str] = typer.Option(None, "--service", "-s", help="Only this service (repeatable)."),
    env: str = typer.Option(None, "--env", "-e", help="Environment (default: the inventory's default)."),
) -> None:
    """Check every service now. Exit code: 0 all OK, 1 warning, 2 critical, 3 unknown or usage."""
    inventory = load(config_path(ctx))
    env_name = environment_name(inventory, env)
    targets = check_targets(inventory, env_name, only=set(service) if service else None)
    clock = SystemClock()
    title = f"{inventory.platform.name} · {env_name}"

    async def once() -> tuple[Any, int]:
        results = await probe_all(targets)
        statuses = assess(inventory, results)
        if service:
            statuses = [s for s in statuses if s.name in service]
        return statuses, overall(statuses).exit_code

    if not watch:
        statuses, code = asyncio.run(once())
        if json_out:
            print_json(as_data(statuses, targets, platform=inventory.platform.name,
                               environment=env_name, checked_at=clock.now()))
        else:
            out.print(as_table(statuses, detailed=detailed, title=title))
            out.print(_footer(statuses))
        raise typer.Exit(code)

    code = asyncio.run(_watch(once, interval, json_out, detailed, title, inventory, env_name,
                              targets, clock))
    raise typer.Exit(code)


async def _watch(once: Any, interval: float, json_out: bool, detailed: bool, title: str,
                 inventory: Any, env_name: str, targets: Any, clock: SystemClock) -> int:
    code = 0
    try:
        if json_out:
            # one JSON document per line, for piping into jq or a log shipper
            import json

            while True:
                statuses, code = await once()
                data = as_data(statuses, targets, platform=inventory.platform.name,
                               environment=env_name, checked_at=clock.now())
                print(json.dumps(data), flush=True)
                await asyncio.sleep(interval)
        with Live(console=out, auto_refresh=False, transient=False) as live:
            while True:
                statuses, code = await once()
                stamp = clock.now().strftime("%H:%M:%S UTC")
                live.update(Group(as_table(statuses, detailed=detailed, title=title),
                                  _footer(statuses),
                                  Text(f"updated {stamp}, every {interval:g}s; Ctrl-C to stop",
                                       style="dim")), refresh=True)
                await asyncio.sleep(interval)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return code


def _footer(statuses: list[Any]) -> Text:
    state = overall(statuses)
    counted = [s for s in statuses if s.checked]
    bad = [s for s in counted if s.state.value != "OK"]
    text = Text(f"{len(counted) - len(bad)}/{len(counted)} OK; overall ")
    text.append(state.value, style={"OK": "green", "WARNING": "yellow"}.get(state.value, "bold red"))
    impacted = [s.name for s in counted if s.impacted]
    if impacted:
        text.append(f"; impacted by a dependency: {', '.join(impacted)}")
    return text


def register(app: typer.Typer) -> None:
    app.command("health")(health)
