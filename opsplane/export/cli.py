"""`opsplane export`: the inventory in the formats of other tools."""

from __future__ import annotations

from pathlib import Path

import typer

from opsplane.cli_support import out, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("prometheus")
def prometheus(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        ..., help="Where to write rules/opsplane.rules.yml and alertmanager.yml."),
    json_out: bool = typer.Option(False, "--json", help="Print the files written as JSON."),
) -> None:
    """Write the alert rules as a Prometheus rule file and the routes, receivers and
    inhibitions as an Alertmanager configuration (check them with promtool and amtool)."""
    from opsplane.cli import config_path
    from opsplane.config.loader import load
    from opsplane.export.prometheus import write

    path = config_path(ctx)
    written = write(load(path), directory, source=path.name)
    if json_out:
        print_json({"files": [str(p) for p in written]})
        return
    for file in written:
        out.print(f"wrote {file}")
    out.print(f"check them: promtool check rules {written[0]}; amtool check-config {written[1]}")
