"""`opsplane incident` (open, ack, update, resolve, note, list, show, postmortem, action items)
and `opsplane report incidents`."""

from __future__ import annotations

import difflib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, open_store, out, parse_when, print_json
from opsplane.clock import SystemClock
from opsplane.config.models import Inventory
from opsplane.errors import UsageError
from opsplane.incidents import postmortem, report, service
from opsplane.incidents.flows import UNNAMED_SERVICE
from opsplane.incidents.models import UPDATE_STATUSES, Status, parse_next_update, parse_ref, ref
from opsplane.incidents.postmortem import span

app = typer.Typer(no_args_is_help=True)
report_app = typer.Typer(no_args_is_help=True)

ID_HELP = "The incident: 12 or INC-12."
STATUS_WORDS = ", ".join(s.value for s in UPDATE_STATUSES)
PUBLIC_TITLE_HELP = ("What the public status page calls it, in customers' words (default: "
                     "'Degraded performance of catalog' and the like, from its severity).")


@app.command("open")
def open_(
    ctx: typer.Context,
    service_name: str = typer.Option(..., "--service", "-s", help="The service it is about."),
    severity: str = typer.Option(..., "--severity", help="P0, P1, P2 or P3."),
    title: str = typer.Option(..., "--title", "-t", help="What is wrong, in a line."),
    commander: str = typer.Option(None, "--commander", help="Who commands it (default: the first to ack)."),
    public_title: str = typer.Option(None, "--public-title", help=PUBLIC_TITLE_HELP),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Open an incident by hand."""
    inventory = _inventory(ctx)
    name = _known_service(inventory, service_name)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        row = service.create(session, title=title, service=name, severity=severity.upper(),
                             actor=actor, now=SystemClock().now(), settings=inventory.incidents,
                             commander=commander, public_title=public_title)
        shown = service.incident_dict(row, inventory.incidents)
    if json_out:
        print_json(shown)
        return
    out.print(f"Opened {shown['ref']} ({shown['severity']}) on {name}: {shown['title']}. "
              f"Acknowledge within {span(shown['targets']['response_time'])}.")


@app.command()
def ack(
    ctx: typer.Context,
    incident: str = typer.Argument(..., help=ID_HELP),
    commander: str = typer.Option(None, "--commander", help="Who commands it (default: you)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Acknowledge an incident; you command it unless --commander names someone else."""
    inventory = _inventory(ctx)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        row = service.acknowledge(session, incident_id=_id(incident), actor=actor,
                                  now=SystemClock().now(), commander=commander)
        shown = service.incident_dict(row, inventory.incidents)
    if json_out:
        print_json(shown)
        return
    out.print(f"Acknowledged {shown['ref']}; commander {shown['commander']}.")


@app.command()
def update(
    ctx: typer.Context,
    incident: str = typer.Argument(..., help=ID_HELP),
    status: str = typer.Option(..., "--status", help=f"One of {STATUS_WORDS}."),
    summary: str = typer.Option(..., "--summary", "-m", help="The issue and its impact on users."),
    actions: str = typer.Option("", "--actions", "-a", help="What is being done to resolve it."),
    next_update: str = typer.Option(
        None, "--next-update", help="When the next update comes: 30m, or an ISO 8601 time "
        "(default: the severity's cadence)."),
    public: bool = typer.Option(False, "--public", help="Show this update on the public status page."),
    root_cause: str = typer.Option(None, "--root-cause", help="The root cause, once known."),
    public_title: str = typer.Option(None, "--public-title", help=PUBLIC_TITLE_HELP),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Post a status update (status, summary, current actions, next update)."""
    inventory = _inventory(ctx)
    now = SystemClock().now()
    promised = _next_update(next_update, now)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        row = service.post_update(session, incident_id=_id(incident), status=_status(status),
                                  summary=summary, actions=actions, next_update_at=promised,
                                  public=public, root_cause=root_cause, actor=actor, now=now,
                                  settings=inventory.incidents, public_title=public_title)
        shown = service.update_dict(row)
    if json_out:
        print_json(shown)
        return
    nxt = f"; next update by {_time(shown['next_update_at'])}" if shown["next_update_at"] else ""
    out.print(f"{ref(_id(incident))} is {shown['status']}{nxt}.")


@app.command()
def resolve(
    ctx: typer.Context,
    incident: str = typer.Argument(..., help=ID_HELP),
    summary: str = typer.Option("Resolved.", "--summary", "-m", help="How it ended."),
    public: bool = typer.Option(False, "--public", help="Show this update on the public status page."),
    root_cause: str = typer.Option(None, "--root-cause", help="The root cause, if known."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Resolve an incident with a final status update."""
    inventory = _inventory(ctx)
    number = _id(incident)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        service.resolve(session, incident_id=number, summary=summary, public=public,
                        root_cause=root_cause, actor=actor, now=SystemClock().now(),
                        settings=inventory.incidents)
        shown = service.incident_dict(service.get_or_raise(session, incident_id=number),
                                      inventory.incidents)
    if json_out:
        print_json(shown)
        return
    took = datetime.fromisoformat(shown["resolved_at"]) - datetime.fromisoformat(shown["started_at"])
    due = shown["targets"]["postmortem_due"]
    after = f" Post-mortem due by {_time(due)}." if due else ""
    out.print(f"Resolved {shown['ref']} after {span(took.total_seconds())}.{after}")


@app.command()
def note(
    incident: str = typer.Argument(..., help=ID_HELP),
    text: str = typer.Argument(..., help="What was tried or seen."),
) -> None:
    """Add a note to an incident's timeline."""
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        service.add_note(session, incident_id=_id(incident), text=text, actor=actor,
                         now=SystemClock().now())
    out.print(f"Noted on {ref(_id(incident))}.")


@app.command("list")
def list_(
    ctx: typer.Context,
    open_only: bool = typer.Option(False, "--open", help="Only incidents not yet resolved."),
    service_name: str = typer.Option(None, "--service", "-s", help="Only this service's."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Incidents, newest first."""
    inventory = _inventory(ctx)
    with open_store().session() as session:
        rows = [service.incident_dict(r, inventory.incidents)
                for r in service.get_all(session, open_only=open_only, service=service_name, limit=limit)]
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("No incidents." if not open_only else "No open incidents.")
        return
    table = Table("ID", "SEV", "STATUS", "SERVICE", "STARTED", "COMMANDER", "TITLE")
    for row in rows:
        table.add_row(row["ref"], row["severity"], row["status"], row["service"],
                      _time(row["started_at"]), row["commander"] or "-", row["title"])
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    incident: str = typer.Argument(..., help=ID_HELP),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """An incident with its status updates, alerts, action items and timeline."""
    inventory = _inventory(ctx)
    with open_store().session() as session:
        shown = service.detail(session, incident_id=_id(incident), settings=inventory.incidents,
                               now=SystemClock().now())
    if json_out:
        print_json(shown)
        return
    _print_detail(shown)


@app.command("postmortem")
def postmortem_command(
    ctx: typer.Context,
    incident: str = typer.Argument(..., help=ID_HELP),
    out_file: Path = typer.Option(None, "--out", "-o", help="Write to this file (default: standard output)."),
) -> None:
    """Write a post-mortem draft in Markdown.

    Timeline, root cause, impact, what went well and wrong, action items."""
    inventory = _inventory(ctx)
    with open_store().session() as session:
        facts = service.postmortem_facts(session, incident_id=_id(incident),
                                         settings=inventory.incidents, now=SystemClock().now())
    text = postmortem.render(facts)
    if out_file is None:
        typer.echo(text, nl=False)
        return
    out_file.write_text(text)
    out.print(f"Wrote the post-mortem draft of {ref(facts.incident.id)} to {out_file}.")


@app.command()
def action(
    incident: str = typer.Argument(..., help=ID_HELP),
    title: str = typer.Argument(..., help="What is to be done."),
    owner: str = typer.Option(..., "--owner", help="Who does it."),
    due: str = typer.Option(None, "--due", help="By when (YYYY-MM-DD)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Add an action item to an incident; it is tracked until `opsplane incident done`."""
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        item = service.add_action_item(session, incident_id=_id(incident), title=title, owner=owner,
                                       due=_date(due), actor=actor, now=SystemClock().now())
    if json_out:
        print_json(item.as_dict())
        return
    out.print(f"Action item {item.id} on {ref(item.incident_id)} for {item.owner}"
              + (f", due {item.due.isoformat()}." if item.due else "."))


@app.command()
def done(item: int = typer.Argument(..., help="The action item's number.")) -> None:
    """Mark an action item done."""
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        finished = service.complete_action_item(session, item_id=item, actor=actor,
                                                now=SystemClock().now())
    out.print(f"Action item {finished.id} ({finished.title}) is done.")


@app.command()
def actions(
    all_: bool = typer.Option(False, "--all", help="Include the ones done."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Action items not done yet (with --all, every one), oldest first.

    Exit code 1 when any is overdue, so a weekly review script notices."""
    today = SystemClock().now().date()
    with open_store().session() as session:
        items = service.get_action_items(session, open_only=not all_)
    overdue = [i for i in items if i.done_at is None and i.due is not None and i.due < today]
    if json_out:
        print_json([{**i.as_dict(), "overdue": i in overdue} for i in items])
    elif not items:
        out.print("No open action items." if not all_ else "No action items.")
    else:
        table = Table("#", "INCIDENT", "ACTION", "OWNER", "DUE", "DONE")
        for i in items:
            due = i.due.isoformat() if i.due else "-"
            table.add_row(str(i.id), ref(i.incident_id), i.title, i.owner,
                          f"[red]{due} (overdue)[/]" if i in overdue else due,
                          i.done_at.date().isoformat() if i.done_at else "-")
        out.print(table)
    if overdue:
        raise typer.Exit(1)


@report_app.command("incidents")
def report_incidents(
    ctx: typer.Context,
    since: str = typer.Option("30d", "--since", help="How far back: 7d, 30d, or an ISO 8601 time."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Incidents since then: count, MTTA, MTTD, MTTR by severity and service.

    Each figure is set against its severity's response and resolution targets."""
    inventory = _inventory(ctx)
    now = SystemClock().now()
    start = parse_when(since, now) or now
    with open_store().session() as session:
        views = [service.view(r) for r in service.get_all(session, since=start, limit=100_000)]
    shown = report.incident_report(views, inventory.incidents, since=start, now=now)
    if json_out:
        print_json(shown)
        return
    overall = shown["overall"]
    out.print(f"{overall['count']} incidents since {_time(shown['since'])} ({overall['open']} open).")
    if not overall["count"]:
        return
    for title, key in (("By severity", "severity"), ("By service", "service")):
        table = Table(key.upper(), "COUNT", "OPEN", "MTTD", "MTTA", "MTTR", "ACK IN TIME",
                      "RESOLVED IN TIME", title=title)
        for row in shown[f"by_{key}"]:
            ack_target = f" ({span(row['response_target'])})" if "response_target" in row else ""
            fix_target = f" ({span(row['resolution_target'])})" if "resolution_target" in row else ""
            table.add_row(row[key], str(row["count"]), str(row["open"]), _span(row["mttd"]),
                          _span(row["mtta"]), _span(row["mttr"]),
                          f"{row['response_met']}/{row['response_judged']}{ack_target}",
                          f"{row['resolution_met']}/{row['resolution_judged']}{fix_target}")
        out.print(table)


# --- helpers -------------------------------------------------------------------------------------


def _print_detail(shown: dict[str, Any]) -> None:
    out.print(f"[bold]{shown['ref']}[/] {shown['title']}")
    if shown["public_title"]:
        out.print(f"  on the status page: {shown['public_title']}")
    people = ", ".join(shown["participants"]) or "-"
    out.print(f"  {shown['severity']} on {shown['service']}, {shown['status']}; "
              f"commander {shown['commander'] or '-'}; participants {people}")
    out.print(f"  started {_time(shown['started_at'])}, detected {_time(shown['detected_at'])}, "
              f"acknowledged {_time(shown['acknowledged_at'])}, resolved {_time(shown['resolved_at'])}")
    if shown["next_update_at"]:
        out.print(f"  next update due {_time(shown['next_update_at'])}")
    if shown["updates"]:
        table = Table("AT", "STATUS", "SUMMARY", "ACTIONS", "PUBLIC", "BY", title="Status updates")
        for u in shown["updates"]:
            table.add_row(_time(u["at"]), u["status"], u["summary"], u["actions"],
                          "yes" if u["public"] else "no", u["author"])
        out.print(table)
    if shown["action_items"]:
        table = Table("#", "ACTION", "OWNER", "DUE", "DONE", title="Action items")
        for a in shown["action_items"]:
            table.add_row(str(a["id"]), a["title"], a["owner"], a["due"] or "-", _time(a["done_at"]))
        out.print(table)
    table = Table("AT", "EVENT", "BY", title="Timeline")
    for entry in shown["timeline"]:
        table.add_row(_time(entry["at"]), entry["what"], entry["actor"])
    out.print(table)


def _inventory(ctx: typer.Context) -> Inventory:
    from opsplane.config.loader import load

    return load(config_path(ctx))


def _known_service(inventory: Inventory, name: str) -> str:
    known = [n for _, n, _ in inventory.components()]
    if name in known or name == UNNAMED_SERVICE:
        return name
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known) or 'none'}"
    raise UsageError(f"unknown service {name!r}{hint} ({UNNAMED_SERVICE!r} means the whole platform)")


def _id(text: str) -> int:
    number = parse_ref(text)
    if number is None:
        raise UsageError(f"cannot read incident {text!r}; give its number, such as 12 or INC-12")
    return number


def _status(text: str) -> Status:
    try:
        return Status(text.lower())
    except ValueError:
        raise UsageError(f"unknown status {text!r}; use one of {STATUS_WORDS}") from None


def _next_update(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_next_update(text, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"cannot read date {text!r}; use YYYY-MM-DD") from None


def _time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _span(value: float | None) -> str:
    return span(value) if value is not None else "-"
