"""`opsplane notify test|outbox`: try a channel end to end; see what the outbox holds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import typer
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.types import parse_wait
from opsplane.errors import UsageError
from opsplane.notify import service
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.models import Notification
from opsplane.notify.outbox import Outbox
from opsplane.notify.tables import OPEN_STATES, STATES

app = typer.Typer(no_args_is_help=True)


@app.command("test")
def test_channel(
    ctx: typer.Context,
    channel: str = typer.Argument(..., help="A channel named under channels.named in the inventory."),
    wait: str = typer.Option("30s", "--wait", help="How long to keep retrying before giving the answer."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Send a test notification to CHANNEL through the outbox and report what happened.

    Exit 0 when it was delivered, 2 when the channel refused it, 1 when it is still waiting
    for a retry (it stays in the outbox)."""
    from opsplane.config import load

    settings = load(config_path(ctx)).channels
    try:
        budget = parse_wait(wait)
    except ValueError as exc:
        raise UsageError(f"--wait: {exc}") from None
    clock = SystemClock()
    actor = acting_as(Role.OPERATOR)
    message = Notification(
        key=f"test:{channel}:{uuid.uuid4().hex[:12]}", group=f"test:{channel}", severity="P2",
        summary=f"Test notification to {channel}",
        details=f"Sent with `opsplane notify test {channel}` by {actor.removeprefix('cli:')}. "
                "Nothing is wrong.",
        source="opsplane notify test",
    )
    store = open_store(create=True)
    [queued] = Outbox(store, settings).enqueue(message, channels=[channel], now=clock.now())
    if queued.row_id is None:
        raise UsageError(f"the test notification to {channel} was not queued")
    dispatcher = Dispatcher(store, settings, clock=clock)
    try:
        row = _deliver(dispatcher, store, queued.row_id, clock, deadline=time.monotonic() + budget)
    finally:
        dispatcher.close()
    result = row.as_dict()
    if json_out:
        print_json(result)
    else:
        _say(result)
    raise typer.Exit({"delivered": 0, "pending": 1}.get(row.state, 2))


def _deliver(dispatcher: Dispatcher, store: Any, row_id: int, clock: SystemClock, *,
             deadline: float) -> Any:
    """Run passes for this one row until it is finished or the deadline comes."""
    while True:
        dispatcher.run_once(only={row_id})
        with store.session() as session:
            row = service.get(session, row_id=row_id)
        if row is None or row.state != "pending":
            return row
        wait = (row.next_attempt_at - clock.now()).total_seconds()
        if time.monotonic() + wait > deadline:
            return row
        time.sleep(max(0.0, wait))


def _say(row: dict[str, Any]) -> None:
    attempts = f"{row['attempts']} attempt{'s' if row['attempts'] != 1 else ''}"
    if row["state"] == "delivered":
        out.print(f"[green]delivered[/] to {row['channel']} ({attempts}).")
    elif row["state"] == "pending":
        out.print(f"[yellow]not delivered yet[/] to {row['channel']} after {attempts}: {row['last_error']}. "
                  f"Next attempt at {row['next_attempt_at'][:19]}; it stays in the outbox.")
    else:
        what = "refused it" if row["state"] == "failed" else "never took it"
        out.print(f"[red]{row['state']}[/]: {row['channel']} {what} ({attempts}): {row['last_error']}")


@app.command("outbox")
def outbox_command(
    all_: bool = typer.Option(False, "--all",
                              help="Include delivered, digested and withdrawn notifications."),
    state: list[str] = typer.Option(None, "--state", help=f"Only rows in this state ({', '.join(STATES)}); "
                                    "may be given more than once."),
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    limit: int = typer.Option(200, "--limit", help="At most this many rows, oldest first."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Notifications waiting (pending, held for a digest), failed or dead.

    With --all also those delivered, digested or withdrawn (an incident's pages not sent
    before it was acknowledged or resolved); the table ends with how many rows the outbox
    holds in each state. Exit 1 when some notification listed failed or is dead."""
    unknown = [given for given in state or () if given not in STATES]
    if unknown:
        raise UsageError(f"--state: unknown state {unknown[0]!r}; use one of {', '.join(STATES)}")
    states = state or (None if all_ else [*OPEN_STATES, "failed", "dead"])
    with open_store().session() as session:
        rows = [row.as_dict() for row in service.get_all(session, states=states, channel=channel,
                                                          limit=limit)]
        counts = None if json_out else service.count_by_state(session)
    if json_out:
        print_json(rows)
    else:
        _table(rows, counts or {})
    if any(row["state"] in ("failed", "dead") for row in rows):
        raise typer.Exit(1)


def _table(rows: list[dict[str, Any]], counts: dict[str, int]) -> None:
    total = ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))
    if not rows:
        out.print("The outbox holds nothing waiting, failed or dead"
                  + (f" (it holds {total})." if total else "."))
        return
    table = Table("ID", "CHANNEL", "STATE", "SEV", "STATUS", "TRIES", "NEXT / DONE", "KEY",
                  "LAST ERROR / REASON")
    colour = {"failed": "red", "dead": "red", "pending": "yellow", "held": "cyan", "delivered": "green",
              "withdrawn": "magenta"}
    for row in rows:
        when = row["finished_at"] or row["next_attempt_at"]
        state = row["state"]
        why = row["reason"] if state == "withdrawn" else row["last_error"]
        table.add_row(str(row["id"]), row["channel"], f"[{colour.get(state, 'white')}]{state}[/]",
                      row["severity"], row["status"], str(row["attempts"]), when[:19], row["key"][:50],
                      why[:60])
    out.print(table)
    out.print(f"The outbox holds {total}.")
