"""`opsplane status maintenance add|list|cancel`: the maintenance notices of the status page."""

from __future__ import annotations

import difflib
from datetime import datetime

import typer
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.models import Inventory
from opsplane.errors import UsageError
from opsplane.timefmt import parse_time
from opsplane.web import maintenance

app = typer.Typer(no_args_is_help=True)
maintenance_app = typer.Typer(no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance",
              help="Announce maintenance windows on the public status page.")


@maintenance_app.command("add")
def add(
    ctx: typer.Context,
    component: list[str] = typer.Option(..., "--component", help="Affected component; repeat for more."),
    start: str = typer.Option(..., "--start", help="ISO 8601 time, e.g. 2026-03-12T02:00Z."),
    end: str = typer.Option(..., "--end", help="ISO 8601 time, after --start."),
    message: str = typer.Option(..., "--message", help="What customers read."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Announce a maintenance window; the components read "under maintenance" during it."""
    inventory = _inventory(ctx)
    names = [_known_component(inventory, name) for name in component]
    now = SystemClock().now()
    actor = acting_as(Role.OPERATOR)
    with open_store(create=True).session() as session:
        notice = maintenance.create(session, components=names, start=_time(start, "--start"),
                                    end=_time(end, "--end"), message=message, actor=actor, now=now)
    if json_out:
        print_json(notice.as_dict(now))
        return
    out.print(f"scheduled {notice.id}: {', '.join(notice.components)} from "
              f"{notice.start.isoformat()} to {notice.end.isoformat()}")


@maintenance_app.command("list")
def list_notices(json_out: bool = typer.Option(False, "--json")) -> None:
    """Notices still to come or under way."""
    now = SystemClock().now()
    with open_store().session() as session:
        notices = maintenance.get_shown(session, now=now)
    if json_out:
        print_json([n.as_dict(now) for n in notices])
        return
    if not notices:
        out.print("no maintenance announced")
        return
    table = Table("ID", "COMPONENTS", "START", "END", "STATE", "MESSAGE")
    for n in notices:
        shown = n.as_dict(now)
        table.add_row(n.id, ", ".join(n.components), n.start.isoformat(), n.end.isoformat(),
                      str(shown["state"]), n.message[:60])
    out.print(table)


@maintenance_app.command("cancel")
def cancel(notice_id: str = typer.Argument(..., help="The notice's id (MNT-...).")) -> None:
    """Withdraw a notice; it leaves the status page at once."""
    actor = acting_as(Role.OPERATOR)
    with open_store(create=True).session() as session:
        notice = maintenance.cancel(session, notice_id=notice_id, actor=actor,
                                    now=SystemClock().now())
    out.print(f"cancelled {notice.id}")


def _inventory(ctx: typer.Context) -> Inventory:
    from opsplane.config.loader import load

    return load(config_path(ctx))


def _known_component(inventory: Inventory, name: str) -> str:
    known = [n for _, n, _ in inventory.components()]
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known) or 'none'}"
    raise UsageError(f"unknown component {name!r}{hint}")


def _time(text: str, option: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
