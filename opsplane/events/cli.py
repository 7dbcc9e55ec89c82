"""`opsplane events`: read the event log."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from opsplane.cli_support import open_store, out, parse_when, print_json
from opsplane.clock import SystemClock
from opsplane.events import service
from opsplane.events.summary import summarise

app = typer.Typer(invoke_without_command=True)


@app.callback()
def events(
    service_name: str = typer.Option(None, "--service", help="Only events about this service."),
    kind: str = typer.Option(None, "--kind", help="Exact kind, or a prefix ending in * (check.*)."),
    since: str = typer.Option(None, "--since", help="Age (24h) or ISO time."),
    until: str = typer.Option(None, "--until", help="Age (1h) or ISO time."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Show events, newest first."""
    now = SystemClock().now()
    store = open_store()
    with store.session() as session:
        rows = [e.as_dict() for e in service.get_all(
            session, service=service_name, kind=kind, since=parse_when(since, now),
            until=parse_when(until, now), limit=limit)]
    if json_out:
        print_json(rows)
        return
    table = Table("TIME", "KIND", "TARGET", "OUTCOME", "ACTOR", "WHAT")
    for e in rows:
        what = summarise(e["kind"], e["details"], target=e["target"], service=e["service"],
                         outcome=e["outcome"])
        table.add_row(e["ts"][:19].replace("T", " "), e["kind"], e["target"], e["outcome"],
                      e["actor"], Text(what))
    out.print(table)
