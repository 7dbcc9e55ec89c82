"""The `opsplane` command: one Typer app, each domain adding its own commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from opsplane.cli_support import DEFAULT_INVENTORY, err
from opsplane.errors import OpsplaneError

app = typer.Typer(
    name="opsplane",
    help="The operations manual of an e-commerce platform, as software.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path = typer.Option(
        None, "--config", "-c", envvar="OPSPLANE_CONFIG",
        help="Inventory file (default: opsplane.yaml in the current directory).",
    ),
) -> None:
    ctx.obj = {"config": config or DEFAULT_INVENTORY}


def invoked_command(argv: list[str]) -> str | None:
    """The subcommand named in `argv` (after the root's options), or None."""
    rest = iter(argv)
    for arg in rest:
        if arg in ("--config", "-c"):
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    return None


def hoist_config(argv: list[str]) -> list[str]:
    """`argv` with `-c/--config PATH` moved in front of the command wherever it was written:
    `opsplane health -c shop.yaml` reads as `opsplane -c shop.yaml health` (no command has
    an option of that name of its own)."""
    front: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
        elif arg in ("--config", "-c"):
            front += [arg, *[value for value in [next(args, None)] if value is not None]]
        elif arg.startswith("--config="):
            front.append(arg)
        else:
            rest.append(arg)
    return front + rest


def _register(command: str | None = None) -> None:
    """Mount every domain's commands; for `serve` only its own, since the control plane runs
    for weeks and every other command's imports would stay resident in it."""
    from opsplane.server_cli import register as register_server

    register_server(app)
    if command == "serve":
        return
    from opsplane.alerts.cli import alerts_command, export_app, silence_app
    from opsplane.auth.cli import app as token_app
    from opsplane.backup.cli import register as register_backup
    from opsplane.backup.failover_cli import register as register_failover
    from opsplane.backup.restore_cli import register as register_restore
    from opsplane.cache.cli import register as register_cache
    from opsplane.capacity.cli import register as register_capacity
    from opsplane.checklists.cli import register as register_checklists
    from opsplane.config.cli import app as config_app
    from opsplane.demo.cli import register as register_demo
    from opsplane.dependencies.cli import register as register_audit
    from opsplane.deploy.cli import register as register_deploy
    from opsplane.events.cli import app as events_app
    from opsplane.gameday.cli import register as register_gameday
    from opsplane.health.cli import register as register_health
    from opsplane.incidents.cli import app as incident_app
    from opsplane.incidents.cli import report_app
    from opsplane.maintenance.cli import register as register_maintenance
    from opsplane.metrics.cli import register as register_query
    from opsplane.notify.cli import app as notify_app
    from opsplane.oncall.cli import app as oncall_app
    from opsplane.reports.cli import register as register_reports
    from opsplane.runbooks.cli import register as register_runbooks
    from opsplane.runtime.cli import register as register_runtime
    from opsplane.security.cli import register as register_security
    from opsplane.slo.cli import register as register_slo
    from opsplane.store.cli import app as db_app
    from opsplane.web.status_cli import app as status_app
    from shop.cli import app as shop_app

    app.add_typer(config_app, name="config", help="Validate the inventory; print its JSON Schema.")
    app.add_typer(token_app, name="token", help="Create, list and revoke API tokens.")
    app.add_typer(events_app, name="events", help="Read the event log.")
    app.add_typer(db_app, name="db", help="The store's migrations; PostgreSQL care and PgBouncer pools.")
    app.add_typer(export_app, name="export", help="The inventory for Prometheus and Alertmanager.")
    app.add_typer(silence_app, name="silence", help="Mute notifications of matching alerts for a while.")
    app.add_typer(notify_app, name="notify", help="Test a notification channel; see the outbox.")
    app.add_typer(oncall_app, name="oncall", help="Who is on call, shifts, handoffs, overrides, escalation.")
    app.add_typer(incident_app, name="incident", help="Incidents: open, ack, update, resolve, post-mortem.")
    app.add_typer(report_app, name="report", help="Reports: incidents, and the jobs' stored reports.")
    app.add_typer(status_app, name="status", help="The public status page: maintenance notices.")
    app.add_typer(shop_app, name="shop", help="The reference shop: serve its services, send it traffic.")
    register_health(app)
    register_query(app)
    app.command("alerts")(alerts_command)
    register_demo(app)
    register_runtime(app)
    register_deploy(app)
    register_backup(app)
    register_restore(app)
    register_failover(app)
    register_runbooks(app)
    register_slo(app)
    register_checklists(app)
    register_gameday(app)
    register_reports(report_app)
    register_audit(app)
    register_capacity(app, report_app)
    register_cache(app)
    register_security(report_app)
    register_maintenance(db_app)


def main() -> None:
    """Entry point: run the app and turn OpsplaneError into its message and exit code."""
    argv = hoist_config(sys.argv[1:])
    _register(invoked_command(argv))
    try:
        code = app(args=argv, standalone_mode=False)
    except OpsplaneError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option values, unknown commands
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)
