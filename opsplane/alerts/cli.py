"""`opsplane silence add|list|expire`: mute notifications of matching alerts for a while."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from opsplane.alerts import evaluations, service
from opsplane.alerts.silences import Silence
from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.types import parse_duration
from opsplane.errors import UsageError
from opsplane.timefmt import parse_time

silence_app = typer.Typer(no_args_is_help=True)


@silence_app.command()
def add(
    matchers: list[str] = typer.Argument(
        ..., help='Label matchers, such as alertname="HighErrorRate" service=~"orders|payments".'
    ),
    comment: str = typer.Option(..., "--comment", "-m", help="Why the alerts are silenced."),
    duration: str = typer.Option("1h", "--duration", "-d", help="How long it lasts (30m, 2h, 1d)."),
    start: str = typer.Option(None, "--start", help="ISO 8601 start time (default: now)."),
    end: str = typer.Option(None, "--end", help="ISO 8601 end time; overrides --duration."),
    author: str = typer.Option(None, "--author", help="Who silences (default: your login name)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Silence matching alerts: they keep their state but are not notified."""
    now = SystemClock().now()
    starts_at = _when(start, "--start") or now
    ends_at = _when(end, "--end") or starts_at + timedelta(seconds=_duration(duration))
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        silence = service.create_silence(
            session, matchers=matchers, author=author or actor.removeprefix("cli:"), comment=comment,
            starts_at=starts_at, ends_at=ends_at, now=now, actor=actor,
        )
    if json_out:
        print_json(_as_dict(silence, now))
        return
    out.print(f"Silence {silence.id} mutes {' '.join(map(str, silence.matchers))} "
              f"until {silence.ends_at.isoformat(timespec='seconds')}.")


@silence_app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include expired silences."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Active and upcoming silences (with --all, expired ones too)."""
    now = SystemClock().now()
    with open_store().session() as session:
        found = service.get_silences(session, now=now, include_expired=all_)
    rows = [_as_dict(silence, now) for silence in found]
    if json_out:
        print_json(rows)
        return
    table = Table("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "AUTHOR", "COMMENT")
    for row in rows:
        table.add_row(str(row["id"]), row["state"], " ".join(row["matchers"]), row["starts_at"][:19],
                      row["ends_at"][:19], row["author"], row["comment"][:60])
    out.print(table)


@silence_app.command()
def expire(
    silence_ids: list[int] = typer.Argument(..., help="Ids shown by `opsplane silence list`."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """End silences now: their alerts are notified again."""
    now = SystemClock().now()
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        ended = [service.expire_silence(session, silence_id=i, now=now, actor=actor)
                 for i in silence_ids]
    if json_out:
        print_json([_as_dict(silence, now) for silence in ended])
        return
    for silence in ended:
        out.print(f"Silence {silence.id} expired.")


def _as_dict(silence: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "state": silence.state(now).value,
        "matchers": [str(m) for m in silence.matchers],
        "author": silence.author,
        "comment": silence.comment,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_at": silence.created_at.isoformat(),
    }


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


export_app = typer.Typer(no_args_is_help=True)


@export_app.callback()
def _export() -> None:
    """Write the inventory's alerting for other tools."""


@export_app.command()
def prometheus(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Where to write the rule file and alertmanager.yml."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Write the alert rules and SLO rules as a Prometheus rule file, the routing as alertmanager.yml."""
    from opsplane.alerts.export import export, write
    from opsplane.alerts.flows import dependencies
    from opsplane.config import load

    inventory = load(config_path(ctx))
    exported = export(inventory.alerting, depends_on=dependencies(inventory), slos=inventory.slos)
    written = write(exported, directory)
    if json_out:
        print_json({"files": [str(p) for p in written], "notes": exported.notes})
        return
    for path in written:
        out.print(f"wrote {path}")
    for note in exported.notes:
        out.print(f"[yellow]not exported:[/] {note}")


def alerts_command(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include recently resolved alerts (kept 15 minutes, "
                              "or until receivers have been sent the resolution)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Firing and pending alerts (value, since, runbook, why muted) and when rules last ran.

    Exit code 3 when nothing has evaluated the rules for three evaluation intervals (or
    ever), else 2 when a P0 or P1 alert fires unmuted, 1 when another one does, else 0.
    """
    from opsplane.alerts.views import alert_rows, evaluation_status, exit_code_for
    from opsplane.config import load

    inventory = load(config_path(ctx))
    now = SystemClock().now()
    with open_store().session() as session:
        rows = alert_rows(session, inventory=inventory, now=now, include_resolved=all_)
        status = evaluation_status(evaluations.get(session), now)
    if json_out:
        print_json({"evaluation": status, "alerts": rows})
    else:
        out.print(status["text"], style=None if status["current"] else "yellow")
        _print_alerts(rows, resolved_too=all_)
    raise typer.Exit(exit_code_for(rows, current=status["current"]))


_HEADERS = ("STATE", "ALERT", "SEV", "LABELS", "VALUE", "SINCE", "MUTED", "RUNBOOK")


def _print_alerts(rows: list[dict[str, Any]], *, resolved_too: bool) -> None:
    """The alerts as a table with each runbook in full on a line of its own below it (a link
    cut to fit a column cannot be followed), numbered from the RUNBOOK column; on a terminal
    too narrow for the table, one short block per alert instead."""
    if not rows:
        out.print("No alerts firing or pending" + (", none recently resolved." if resolved_too
                                                  else "."))
        return
    runbooks: dict[str, int] = {}
    cells = []
    for row in rows:
        shown = {k: v for k, v in row["labels"].items() if k not in ("alertname", "severity")}
        runbook = row["runbook"]
        reference = f"[{runbooks.setdefault(runbook, len(runbooks) + 1)}]" if runbook else ""
        labels = " ".join(f"{k}={v}" for k, v in shown.items())
        cells.append((row["state"], row["name"], row["severity"], labels,
                      row["value_text"], (row["since"] or "")[:19].replace("T", " "), row["muted"] or "",
                      reference))
    widths = [max(len(text) for text in column) for column in zip(_HEADERS, *cells, strict=True)]
    if sum(widths) + 3 * len(widths) + 1 > out.width:
        for row, (state, name, severity, labels, value, since, muted, _) in zip(rows, cells, strict=True):
            head = [state, name, severity, *(["at", value] if value != "-" else []), "since", since]
            out.print(" ".join(head), markup=False)
            for line in (labels, f"muted: {muted}" if muted else "",
                         f"runbook: {row['runbook']}" if row["runbook"] else ""):
                if line:
                    out.print(f"  {line}", markup=False)
        return
    table = Table(*_HEADERS)
    for row_cells in cells:
        table.add_row(*(Text(cell) for cell in row_cells))  # label values are not markup
    out.print(table)
    out.print("Runbooks:")
    for link, number in runbooks.items():
        out.print(f"  [{number}] {link}", markup=False)
