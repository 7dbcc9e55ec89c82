"""`opsplane deploy SERVICE VERSION`, `deploy status|history|promote|pause|resume|abort|approve`
and `opsplane rollback SERVICE`.

The command checks and records a deploy; `serve`'s deploy worker carries it out step by step,
and the command follows it until it ends (`--no-wait` returns once it is recorded). So a deploy
outlives the terminal that asked for it, and a killed `serve` resumes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from opsplane.auth.service import Role
from opsplane.cli_support import (
    acting_as,
    cli_actor,
    err,
    load_inventory,
    open_store,
    out,
    print_json,
)
from opsplane.clock import SystemClock
from opsplane.deploy import service
from opsplane.deploy.plan import describe

_SUBCOMMANDS = ("status", "history", "promote", "pause", "resume", "abort", "approve", "start")


class _DeployGroup(TyperGroup):
    """`opsplane deploy SERVICE VERSION` starts a deploy; `opsplane deploy status ...` and the
    other words are subcommands."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DeployGroup, no_args_is_help=True,
                  help="Deploy a release: rolling, blue-green or canary.")


def _runtime(inventory: Any, base: Path, actor: str) -> Any:
    from opsplane.drivers.runtime import open_runtime

    return open_runtime(inventory, base_dir=base, actor=actor)


@app.command("start", hidden=True)
def start(
    ctx: typer.Context,
    service_name: str = typer.Argument(..., metavar="SERVICE", help="The service to deploy."),
    version: str = typer.Argument(..., metavar="VERSION", help="The release to deploy."),
    strategy: str = typer.Option(None, "--strategy", help="rolling, blue-green or canary (default: the "
                                 "service's, then the inventory's)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    auto_promote: bool = typer.Option(None, "--auto-promote/--manual-promote",
                                      help="Promote a passing canary step on its own "
                                      "(default: the inventory's)."),
    initial_percent: float = typer.Option(None, "--initial-percent", min=0.1, max=100,
                                          help="The canary's first share of requests, in %."),
    override: bool = typer.Option(False, "--override", help="Deploy outside the window or in a freeze "
                                  "(operator role, needs --reason; recorded)."),
    reason: str = typer.Option(None, "--reason", help="Why the window or the spent budget is overridden."),
    env: str = typer.Option(None, "--env", help="Environment (default: the platform's)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the deploy until it ends."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Deploy VERSION of SERVICE.

    Exit 0 when it succeeded (or was recorded, with --no-wait), 1 when it paused for a person,
    2 when it was rolled back or failed, 3 when it was refused (nothing changed).
    """
    from opsplane.deploy.gates import GateContext, check_at_request
    from opsplane.deploy.request import Request, check_proxy, own_instances, prepare
    from opsplane.deploy.service import DeployRefused
    from opsplane.health.targets import environment_name

    if strategy is not None and strategy not in ("rolling", "blue-green", "canary"):
        raise DeployRefused(f"unknown strategy {strategy!r}; use rolling, blue-green or canary")
    if override and not (reason or "").strip():
        raise DeployRefused("--override needs --reason TEXT: why the window or the spent error budget is "
                            "overridden")
    inventory, base = load_inventory(ctx)
    actor = cli_actor() if dry_run else acting_as(Role.OPERATOR)
    runtime = _runtime(inventory, base, actor)
    current, instances = dict(runtime.releases()), own_instances(runtime)
    now = SystemClock().now()
    request = Request(service_name, version, environment_name(inventory, env), strategy, auto_promote,
                      initial_percent, reason.strip() if override and reason else None)
    prepared = prepare(inventory, request, current=current, instances=instances, now=now, cwd=str(base))
    check_proxy(inventory, service_name, runtime, base_dir=base)
    if dry_run:
        if json_out:
            print_json({"dry_run": True, **prepared.as_dict()})
            return
        _print_plan(prepared)
        return
    with open_store(create=True).session() as session:
        check_at_request(GateContext(inventory, session, service_name, now),
                         override=prepared.params.get("override"))
        row = service.create(session, service=service_name, environment=request.environment,
                             strategy=prepared.strategy, from_version=prepared.from_version,
                             to_version=version, plan=prepared.steps, params=prepared.params,
                             approvals_needed=prepared.approvals_needed, actor=actor, now=now)
        deploy_id = row.id
        state = row.state
    if not wait or state == "awaiting_approval":
        if json_out:
            print_json({"id": deploy_id, "state": state})
        else:
            out.print(f"deploy {deploy_id}: {service_name} {prepared.from_version} -> {version} "
                      f"({prepared.strategy}) is {state.replace('_', ' ')}")
            if state == "awaiting_approval":
                out.print(f"it needs {prepared.approvals_needed} approval(s): "
                          f"`opsplane deploy approve {deploy_id}`")
        return
    final = _follow(deploy_id, json_out=json_out)
    if final in ("rolled_back", "failed"):
        raise typer.Exit(2)
    if final == "paused":  # waiting for a person: promote, resume or abort
        raise typer.Exit(1)


def _print_plan(prepared: Any) -> None:
    data = prepared.as_dict()
    out.print(f"[bold]dry run[/]: {data['service']} {data['from']} -> {data['to']}, {data['strategy']}, "
              f"{data['instances']} instance(s), environment {data['environment']}")
    window = data["window"]
    out.print(f"window: {'open' if window['allowed'] else 'closed'}: {window['reason']}"
              + (f" (overridden: {data['override']})" if data["override"] else ""))
    if data["approvals_needed"]:
        out.print(f"approvals needed: {data['approvals_needed']}")
    for number, step in enumerate(data["steps"], 1):
        out.print(f"  {number:2}. {step['text']}")
    out.print("nothing was changed")


def _follow(deploy_id: int, *, json_out: bool) -> str:
    """Print each step as the deploy worker does it, until the deploy ends; its final state."""
    from rich.progress import BarColumn, Progress, TextColumn

    store = open_store()
    seen_state = ""
    waited = 0.0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=err, transient=True, disable=json_out) as progress:
        task = progress.add_task("queued", total=1)
        while True:
            with store.session() as session:
                row = service.get(session, deploy_id)
                data = service.as_dict(row)
            total = len(data["steps"]) or 1
            step = data["steps"][min(data["step"], total - 1)]
            progress.update(task, total=total, completed=min(data["step"], total),
                            description=f"deploy {deploy_id} {data['state']}: {step['text']} "
                                        f"({data['percent']:g} % on {data['to']})")
            if data["state"] != seen_state:
                seen_state = data["state"]
                if not json_out and seen_state not in ("queued", "running"):
                    progress.console.print(f"deploy {deploy_id} {service.state_words(seen_state)}: "
                                           f"{data['reason']}")
            if data["state"] in service.FINAL or data["state"] == "paused":
                break
            if data["state"] == "queued":
                waited += 0.5
                if waited == 15.0 and not json_out:
                    progress.console.print("no control plane has taken the deploy yet: is `opsplane serve` "
                                           "running? The deploy waits for it.")
            time.sleep(0.5)
    if json_out:
        print_json(data)
    else:
        _print_status(data)
    return str(data["state"])


@app.command("status")
def status(ctx: typer.Context,
           target: str = typer.Argument(None, help="A deploy id or a service "
                                        "(default: every active deploy)."),
           json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A deploy's state, its steps, the share of requests on the new release and each verdict."""
    with open_store().session() as session:
        rows = _select(session, target)
        data = [service.as_dict(row) for row in rows]
    if json_out:
        print_json(data if target is None else (data[0] if data else None))
        return
    if not data:
        out.print("no active deploy" if target is None else f"no deploy of {target}")
        return
    for item in data:
        _print_status(item)


def _select(session: Any, target: str | None) -> list[Any]:
    from sqlalchemy import select

    from opsplane.deploy.tables import DeployRow

    if target is None:
        return list(session.scalars(select(DeployRow).where(DeployRow.state.in_(service.ACTIVE))
                                    .order_by(DeployRow.id)))
    if target.isdigit():
        return [service.get(session, int(target))]
    return service.history(session, target, limit=1)


def _print_status(data: dict[str, Any]) -> None:
    out.print(f"[bold]deploy {data['id']}[/]: {data['service']} {data['from']} -> {data['to']} "
              f"({data['strategy']}, {data['environment']}) [bold]{data['state']}[/]"
              + (f": {data['reason']}" if data["reason"] else ""))
    if data["state"] == "succeeded":
        share = f"all requests on {data['to']}"
    elif data["state"] in ("rolled_back", "aborted"):
        share = f"all requests on {data['from']}"
    else:
        share = f"requests on {data['to']}: {data['percent']:g} %"
    out.print(f"  {share}; asked by {data['requested_by']} at "
              f"{data['created_at']}" + (f"; incident {data['incident']}" if data["incident"] else ""))
    for number, step in enumerate(data["steps"]):
        mark = "done" if number < data["step"] else ("now" if number == data["step"] and
                                                      data["state"] in service.ACTIVE else "")
        out.print(f"  {mark:>4} {number + 1:2}. {step['text']}")
    if data["state"] == "paused":
        at_analysis = data["step"] < len(data["steps"]) and data["steps"][data["step"]]["kind"] == "analyse"
        out.print(f"  waiting for a person: `opsplane deploy resume {data['id']}` to go on"
                  + (f", `opsplane deploy promote {data['id']}` to pass this analysis" if at_analysis else "")
                  + f", or `opsplane deploy abort {data['id']}` to undo it")
    elif data["state"] == "awaiting_approval":
        out.print(f"  waiting for approval: `opsplane deploy approve {data['id']}`")
    for verdict in data["verdicts"]:
        table = Table(title=f"analysis at {verdict.get('percent')} %: {verdict.get('outcome')}",
                      title_justify="left")
        for column in ("metric", "outcome", "stable", "canary", "p-value", "effect", "samples", "why"):
            table.add_column(column)
        for metric in verdict.get("metrics", []):
            unit = metric.get("unit")
            table.add_row(str(metric.get("name")), str(metric.get("outcome")),
                          _fmt(metric.get("stable_value"), unit),
                          _fmt(metric.get("canary_value"), unit), _fmt(metric.get("p_value")),
                          _fmt(metric.get("effect_size")),
                          f"{_fmt(metric.get('stable_samples'))}/{_fmt(metric.get('canary_samples'))}",
                          str(metric.get("reason", "")))
        out.print(table)


def _fmt(value: Any, unit: str | None = None) -> str:
    """A figure in its unit (1.9%, 512 ms) when it has one, else in four significant digits."""
    from opsplane.units import format_value

    if value is None:
        return "-"
    if unit and isinstance(value, int | float):
        return format_value(float(value), unit)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("history")
def history(ctx: typer.Context,
            service_name: str = typer.Argument(None, metavar="SERVICE", help="Only this service's deploys."),
            limit: int = typer.Option(20, "--limit", min=1, max=1000),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Past and present deploys, newest first."""
    with open_store().session() as session:
        data = [service.as_dict(row) for row in service.history(session, service_name, limit)]
    if json_out:
        print_json(data)
        return
    table = Table()
    for column in ("id", "service", "from", "to", "strategy", "state", "asked by", "at", "why"):
        table.add_column(column)
    for item in data:
        table.add_row(str(item["id"]), item["service"], item["from"], item["to"], item["strategy"],
                      item["state"], item["requested_by"], item["created_at"][:19], item["reason"][:80])
    out.print(table)


def _change(deploy_id: int, what: str, role: Role = Role.OPERATOR) -> None:
    actor = acting_as(role)
    now = SystemClock().now()
    with open_store(create=True).session() as session:
        row = service.get(session, deploy_id)
        message = service.operate(session, row, what, actor=actor, now=now)
    out.print(message)


@app.command("promote")
def promote(deploy_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Go on to the next step of a canary now, whatever its analysis says so far."""
    _change(deploy_id, "promote")


@app.command("pause")
def pause(deploy_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Stop advancing the deploy; requests stay as they are split now."""
    _change(deploy_id, "pause")


@app.command("resume")
def resume(deploy_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Advance a paused deploy again."""
    _change(deploy_id, "resume")


@app.command("abort")
def abort(deploy_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Roll the deploy back: requests to the previous release, its new instances stopped."""
    _change(deploy_id, "abort")


@app.command("approve")
def approve(deploy_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Approve a deploy that its environment makes wait for approvals (not your own)."""
    _change(deploy_id, "approve")


def rollback(ctx: typer.Context,
             service_name: str = typer.Argument(..., metavar="SERVICE", help="The service to roll back."),
             wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow it until it ends.")) -> None:
    """Go back to the previous release of SERVICE at once.

    The active deploy is rolled back; when none is active, the last successful one is undone by
    a deploy back to its previous release (no window applies: a rollback is how an incident ends)."""
    from opsplane.deploy.service import DeployRefused

    inventory, _ = load_inventory(ctx)
    try:
        component = inventory.component(service_name)
    except KeyError:
        raise DeployRefused(f"unknown service {service_name!r}") from None
    actor = acting_as(Role.OPERATOR)
    now = SystemClock().now()
    with open_store(create=True).session() as session:
        deploy_id, message = service.roll_back_service(session, service_name, actor=actor, now=now,
                                                       proxied=component.proxy is not None)
    out.print(message)
    if wait:
        final = _follow(deploy_id, json_out=False)
        if final == "failed":
            raise typer.Exit(2)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="deploy")
    root.command("rollback")(rollback)


__all__ = ["app", "register", "describe", "err"]
