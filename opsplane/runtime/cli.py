"""`opsplane up / down / ps / restart / scale / stats / logs`: the platform's processes, as
`docker compose` manages containers in the operations manual."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, cli_actor, config_path, open_store, out, parse_when, print_json
from opsplane.clock import SystemClock
from opsplane.config.models import Inventory
from opsplane.drivers.runtime.base import (
    InstanceState,
    InstanceStatus,
    LogLine,
    RuntimeDriver,
    RuntimeNotRunning,
)
from opsplane.drivers.runtime.factory import open_runtime
from opsplane.drivers.runtime.logfiles import stamp
from opsplane.errors import UsageError
from opsplane.runtime import report
from opsplane.runtime.flows import await_settled
from opsplane.runtime.logscan import as_data, count_errors
from opsplane.runtime.selection import require, require_group, runnable, select

_err = Console(stderr=True, highlight=False, soft_wrap=True)
_SERVICES = typer.Argument(None, help="Services to act on (default: every one with a run section).",
                           show_default=False)


def _open(ctx: typer.Context, *, changes: bool = False) -> tuple[Inventory, RuntimeDriver]:
    from opsplane.config.loader import load

    path = config_path(ctx)
    inventory = load(path)
    actor = acting_as(Role.OPERATOR) if changes else cli_actor()  # starting and stopping: operators
    return inventory, open_runtime(inventory, base_dir=path.resolve().parent, actor=actor,
                                   shares=_deploy_shares)


def _deploy_shares() -> dict[str, Any]:
    """How deploys under way split requests, so that `up` and `scale` keep it; none without a store."""
    from opsplane.deploy.traffic import active_shares
    from opsplane.store.db import NoStoreYet

    try:
        store = open_store()
    except NoStoreYet:
        return {}
    try:
        with store.session() as session:
            return active_shares(session)
    finally:
        store.close()


def up(
    ctx: typer.Context,
    services: list[str] = _SERVICES,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the instances answer."),
    timeout: float = typer.Option(30.0, "--timeout", min=0, help="Longest wait, in seconds."),
) -> None:
    """Start services as supervised processes (like `docker compose up -d`).

    Exit 2 when an instance is not running once the wait is over.
    """
    inventory, driver = _open(ctx, changes=True)
    names = select(inventory, services)
    driver.up(names)
    statuses = await_settled(driver, names, timeout=timeout if wait else 0)
    out.print(report.ps_table(statuses, SystemClock().now()))
    _exit_unless_running(statuses, wait)


def down(ctx: typer.Context, services: list[str] = _SERVICES) -> None:
    """Stop services and their tracks (all, and the supervisor with them, when none is named)."""
    inventory, driver = _open(ctx, changes=True)
    names = select(inventory, services) if services else None
    try:
        before = driver.status()
    except RuntimeNotRunning as exc:
        before = exc.orphans
    driver.down(names)
    stopped: dict[str, int] = {}
    for status in before:
        if status.pid and (names is None or status.base_service in names):
            stopped[status.service] = stopped.get(status.service, 0) + 1
    if not stopped:
        out.print("nothing was running")
        return
    out.print("stopped " + ", ".join(
        f"{name} ({count} instance{'s' if count != 1 else ''})" for name, count in stopped.items()))


def ps(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the instances: release, pid, port, state, uptime, restarts (like `docker compose ps`).

    A track, another release of a service run beside it, is listed as SERVICE@VERSION.

    Exit 1 when no supervisor runs, 2 when processes it started run without it.
    """
    _, driver = _open(ctx)
    statuses = driver.status()
    now = SystemClock().now()
    if json_out:
        print_json(report.ps_data(statuses, now))
    else:
        out.print(report.ps_table(statuses, now))


def stats(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """CPU and memory of every instance (like `docker stats --no-stream`).

    Figures cover each instance's process and its children, sampled every 2 s by the supervisor.
    """
    _, driver = _open(ctx)
    statuses = driver.status()
    if json_out:
        print_json(report.stats_data(statuses))
    else:
        out.print(report.stats_table(statuses))


def restart(ctx: typer.Context, service: str = typer.Argument(
        ..., help="The service (or track, SERVICE@VERSION) to restart.")) -> None:
    """Restart each instance of a service in turn, waiting for one to answer before the next.

    Each instance keeps the release it runs."""
    inventory, driver = _open(ctx, changes=True)
    require_group(inventory, service)
    before = {s.instance: s.pid for s in driver.status() if s.service == service}
    driver.restart(service)
    after = [s for s in driver.status() if s.service == service]
    for status in after:
        out.print(f"restarted {status.name}: pid {before.get(status.instance) or '-'} -> "
                  f"{status.pid or '-'} ({status.state})")
    _exit_unless_running(after, True)


def scale(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="The service to scale."),
    instances: str = typer.Argument(..., metavar="N", help="How many instances to run (1-100)."),
) -> None:
    """Run N instances of a service (like `docker compose up -d --scale SERVICE=N`)."""
    inventory, driver = _open(ctx, changes=True)
    require(inventory, service)
    count = _instance_count(service, instances)
    try:
        before = sum(1 for s in driver.status() if s.service == service and s.pid)
    except RuntimeNotRunning:
        before = 0
    driver.scale(service, count)
    statuses = [s for s in driver.status() if s.service == service]
    ports = ", ".join(str(s.port) for s in statuses if s.port)
    out.print(f"scaled {service} from {before} to {count}" + (f"; ports {ports}" if ports else ""))
    run = inventory.component(service).run
    if count > 1 and run is not None and not run.uses_port():
        out.print(f"note: {service}'s run does not use {{port}}: every instance gets the same arguments")
    _exit_unless_running(statuses, True)


def logs(
    ctx: typer.Context,
    service: str = typer.Argument(None, help="The service whose logs to show (SERVICE@VERSION: a track's).",
                                  show_default=False),
    since: str = typer.Option(None, "--since", help="Age (1h, 15m) or ISO time [--errors: 24h]."),
    grep: str = typer.Option(None, "--grep", help="Only lines matching this regular expression."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until Ctrl-C."),
    tail: int = typer.Option(None, "--tail", min=0, help="Only the last N lines (before following)."),
    errors: bool = typer.Option(False, "--errors", help="Count error lines by service instead."),
    top: int = typer.Option(5, "--top", min=1, help="Messages listed per service with --errors."),
    json_out: bool = typer.Option(False, "--json", help="JSON: one object per line, or the report."),
) -> None:
    """Show a service's logs (like `docker compose logs`), or count errors with --errors.

    SERVICE shows the lines of the service's own instances; a track's are `logs SERVICE@VERSION`.

    --errors counts error lines by service with their most frequent messages, over the last
    24 hours unless --since says otherwise; exit 1 when there are any.
    """
    inventory, driver = _open(ctx)
    now = SystemClock().now()
    if errors:
        if follow or tail is not None or grep:
            raise UsageError("--errors cannot be combined with --follow, --tail or --grep")
        _error_report(inventory, driver, service, parse_when(since or "24h", now), top, json_out)
        return
    if service is None:
        raise UsageError("name a service (opsplane logs SERVICE), or count errors with --errors")
    lines = driver.logs(service, since=parse_when(since, now), grep=grep, follow=follow, tail=tail)
    try:
        _print_lines(lines, json_out)
    except KeyboardInterrupt:
        pass


def _print_lines(lines: Iterator[LogLine], json_out: bool) -> None:
    # written as they are, not through rich: log text is not markup
    for line in lines:
        if json_out:
            sys.stdout.write(json.dumps(line.as_dict()) + "\n")
        else:
            sys.stdout.write(f"{stamp(line.ts)} {line.service}.{line.instance} {line.stream} {line.text}\n")
        sys.stdout.flush()


def _error_report(inventory: Inventory, driver: RuntimeDriver, service: str | None,
                  since: datetime | None, top: int, json_out: bool) -> None:
    names = [require_group(inventory, service)] if service else list(runnable(inventory))
    results = [count_errors(name, driver.logs(name, since=since)) for name in names]
    if json_out:
        print_json(as_data(results, since=since, top=top))
    else:
        for part in report.errors_table(results, top=top):
            out.print(part)
    if any(r.errors for r in results):
        raise typer.Exit(1)


def _instance_count(service: str, text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if str(count) != text.strip() or not 1 <= count <= 100:
        raise UsageError(
            f"cannot scale {service} to {text!r}: N is a whole number of instances from 1 to 100 "
            f"(to stop every instance: opsplane down {service})"
        )
    return count


def _exit_unless_running(statuses: list[InstanceStatus], waited: bool) -> None:
    """Exit 2 naming the instances that do not run, with where to look."""
    if not waited:
        return
    bad = [s for s in statuses if s.state != InstanceState.RUNNING]
    if not bad:
        return
    for status in bad:
        exit_note = f", last exit: {status.last_exit}" if status.last_exit else ""
        _err.print(f"{status.name} is {status.state}{exit_note}; see `opsplane logs {status.service}`")
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    for command in (up, down, ps, restart, scale, stats, logs):
        app.command(command.__name__)(command)
