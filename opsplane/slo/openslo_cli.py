"""`opsplane slo openslo`: the inventory's SLOs as OpenSLO v1 YAML, and an OpenSLO file as the
`slos:` section to paste into opsplane.yaml (docs/openslo.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from opsplane.cli_support import config_path, err, print_json

app = typer.Typer(no_args_is_help=True, help="SLOs to and from OpenSLO v1 (docs/openslo.md).")


@app.callback()
def _openslo() -> None:
    """SLOs to and from OpenSLO v1."""


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the YAML here instead of stdout."),
) -> None:
    """The inventory's SLOs as OpenSLO v1 documents: a Service per service, then an SLO each."""
    from opsplane.config import load
    from opsplane.slo.openslo import dump, to_openslo

    inventory = load(config_path(ctx))
    text = dump(to_openslo(inventory.slos)) if inventory.slos else ""
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    err.print(f"wrote {len(inventory.slos)} SLO(s) to {output}")


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="An OpenSLO v1 file (several documents, ---separated)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Print the `slos:` section that an OpenSLO file describes, to paste into opsplane.yaml.

    Exit code 3, each problem with its document, field and line, when the file holds something
    opsplane cannot compute; nothing is printed then.
    """
    from opsplane.slo.openslo import OpenSloError, load

    try:
        text = file.read_text()
    except OSError as exc:
        err.print(f"cannot read {file}: {exc.strerror or exc}")
        raise typer.Exit(3) from None
    try:
        imported = load(text, file=str(file))
    except OpenSloError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from None
    section = {name: slo_section(slo) for name, slo in imported.slos.items()}
    if json_out:
        print_json({"slos": section, "notes": imported.notes})
        return
    for note in imported.notes:
        err.print(f"[yellow]skipped:[/] {note}")
    typer.echo(yaml.safe_dump({"slos": section}, sort_keys=False, allow_unicode=True), nl=False)


def slo_section(slo: Any) -> dict[str, Any]:
    """An SLO as opsplane.yaml spells it, leaving out what is at its default."""
    section: dict[str, Any] = slo.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    return section
