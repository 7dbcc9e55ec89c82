"""`opsplane gameday list|run|report`.

`run` changes the world (it stops services, fails requests, fills a disk): it needs the operator
role and the scenario's name typed back, unless `--yes`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, err, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.errors import UsageError

app = typer.Typer(no_args_is_help=True)
_EXIT = {"pass": 0, "fail": 2}
_MARK = {"pass": "[green]✓ pass[/]", "fail": "[red]✗ fail[/]", "waiting": "[yellow]… waiting[/]",
         "not expected": "[dim]- not expected[/]"}


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON."),
          limit: int = typer.Option(20, "--limit", min=1, help="At most this many game days, newest first.")
          ) -> None:
    """The scenarios a game day can play here, and the game days played."""
    from opsplane.gameday import service
    from opsplane.gameday.catalog import scenarios, source_of

    inventory, _ = load_inventory(ctx)
    found: list[dict[str, Any]] = [
        {"name": name, "kind": s.kind, "target": s.target, "max_duration": s.max_duration,
         "expect": list(s.expect), "source": source_of(inventory, name), "description": s.description}
        for name, s in sorted(scenarios(inventory).items())]
    with open_store().session() as session:
        played = [service.as_dict(row) for row in service.get_all(session, limit=limit)]
    schedule = inventory.gamedays.schedule
    if json_out:
        print_json({"scenarios": found, "gamedays": played,
                    "schedule": schedule.model_dump(mode="json") if schedule else None})
        return
    table = Table("SCENARIO", "KIND", "TARGET", "AT MOST", "EXPECTS", "FROM", title="scenarios")
    for s in found:
        table.add_row(s["name"], s["kind"], s["target"], f"{s['max_duration']:g} s", ", ".join(s["expect"]),
                      s["source"])
    out.print(table)
    if schedule is not None:
        out.print(f"scheduled: {schedule.scenario} at '{schedule.cron}' ({schedule.time_zone})")
    if played:
        runs = Table("ID", "SCENARIO", "STATE", "VERDICT", "BY", "INJECTED", title="game days")
        for row in played:
            runs.add_row(str(row["id"]), row["scenario"], row["state"], _MARK.get(row["verdict"] or "", "-"),
                         row["requested_by"], (row["injected_at"] or "-")[:19])
        out.print(runs)


@app.command()
def run(
    ctx: typer.Context,
    scenario: str = typer.Argument(..., metavar="SCENARIO", help="A scenario `gameday list` shows."),
    max_duration: str = typer.Option(None, "--max-duration", metavar="DURATION",
                                     help="Undo the fault after this long at the latest (e.g. 2m)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for the scenario's name typed back."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Inject the scenario's fault, measure detection, paging, recovery and resolution, undo it.

    Exit code 0 when the game day passed, 2 when it failed, 3 when it was refused."""
    from opsplane.config.types import parse_duration
    from opsplane.gameday.flows import GameDays, scenario_named

    inventory, base_dir = load_inventory(ctx)
    limit = None
    if max_duration is not None:
        try:
            limit = parse_duration(max_duration)
        except ValueError as exc:
            raise UsageError(f"--max-duration: {exc}") from None
    chosen = scenario_named(inventory, scenario, max_duration=limit)
    actor = acting_as(Role.OPERATOR)
    say = (lambda text: err.print(escape(text), highlight=False)) if json_out else \
        (lambda text: out.print(escape(text), highlight=False))
    days = GameDays(open_store(create=True), inventory, base_dir=base_dir, environ=os.environ,
                    clock=SystemClock(), actor=actor, progress=say)
    try:
        for line in days.recover():
            say(line)
        days.check(scenario, chosen)
        if not yes:
            _confirm(scenario, chosen)
        try:
            played = days.play(scenario, chosen, trigger="cli")
        except KeyboardInterrupt:  # the fault is undone by the flow's finally; the report is cut short
            err.print("interrupted: the fault was undone")
            raise typer.Exit(130) from None
    finally:
        days.close()
    if json_out:
        print_json(played.report or {"gameday": played.id, "state": played.state, "verdict": played.verdict})
    elif played.report is not None:
        _print_report(played.report)
    raise typer.Exit(_EXIT.get(played.verdict, 2))


def _confirm(name: str, scenario: Any) -> None:
    what = {"kill": f"stops every instance of {scenario.target}",
            "errors": f"makes {scenario.target} fail requests",
            "latency": f"slows every request to {scenario.target}",
            "stop-database": f"stops the PostgreSQL server of {scenario.target}",
            "stop-cache": f"stops the Redis server of {scenario.target}",
            "fill-disk": f"fills the disk {scenario.target}'s host check watches"}[scenario.kind]
    if not sys.stdin.isatty():
        raise UsageError(f"game day {name} {what}: confirm it at a terminal, or pass --yes")
    typed = input(f"This game day {what} for up to {scenario.max_duration:g} s. "
                  f"Type {name} to go on: ").strip()
    if typed != name:
        raise UsageError(f"not confirmed: expected {name!r}; nothing was changed")


@app.command()
def report(
    gameday_id: int = typer.Argument(..., metavar="ID", help="The game day."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the report as Markdown."),
) -> None:
    """A game day's report. Exit code 0 when it passed, 2 when it failed, 1 while it plays."""
    from opsplane.gameday import service

    with open_store().session() as session:
        row = service.get_or_raise(session, gameday_id=gameday_id)
        found, text = service.as_dict(row), row.markdown
    code = _EXIT.get(found["verdict"] or "", 1)
    if json_out:
        print_json(found)
    elif markdown and text:
        sys.stdout.write(text)
    elif found["report"] is not None:
        _print_report(found["report"])
    else:
        why = found["error"] or found["undone"]
        out.print(f"game day {found['id']} ({found['scenario']}): {found['state']}"
                  + (f": {escape(why)}" if why else ""))
    raise typer.Exit(code)


def _print_report(report: dict[str, Any]) -> None:
    from opsplane.timefmt import span

    def took(value: float | None) -> str:
        return "-" if value is None else span(value)

    out.print(f"game day {report['gameday']} ({escape(report['scenario'])}): {_MARK[report['verdict']]}  "
              f"fault {report['kind']} on {report['target']} for {took(report['fault_seconds'])}; "
              f"judged as {report['severity']}")
    table = Table("MEASURE", "TOOK", "TARGET", "VERDICT", "EVIDENCE")
    for m in report["measures"]:
        table.add_row(m["name"], took(m["seconds"]), took(m["target"]), _MARK.get(m["verdict"], m["verdict"]),
                      escape(m["evidence"] or "-"))
    out.print(table)
    out.print(f"undone: {escape(report['undone'])}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gameday", help="Game days: inject a fault on purpose, measure what follows.")


__all__ = ["app", "register"]
