"""`opsplane config validate|schema`: check the inventory, print its JSON Schema."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from opsplane.cli_support import config_path, err, out, print_json
from opsplane.config.loader import load_with_warnings
from opsplane.config.models import SECTIONS, Inventory
from opsplane.config.schema import json_schema
from opsplane.errors import ConfigError, UsageError

app = typer.Typer(no_args_is_help=True)

_SINGULAR = {"services": "service", "databases": "database", "caches": "cache",
             "proxies": "proxy", "hosts": "host", "checks": "check"}


@app.command()
def validate(
    ctx: typer.Context,
    path: Path = typer.Argument(
        None, help="Inventory file (default: --config, then opsplane.yaml)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Load the inventory and report every problem and warning in it.

    Warnings name what is valid but will not do what it seems to. Exit code: 0 valid (with or
    without warnings), 3 invalid."""
    path = path or config_path(ctx)
    try:
        inventory, warnings = load_with_warnings(path)
        runbooks = _runbooks(inventory, path)
        checklists = _checklists(inventory, path)
    except ConfigError as exc:
        if not json_out:
            raise
        print_json({"valid": False, "file": str(path),
                    "problems": [asdict(problem) for problem in exc.problems]})
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        print_json({"valid": True, "file": str(path), **summary(inventory),
                    **({"runbooks": runbooks} if runbooks is not None else {}),
                    **({"checklists": checklists} if checklists is not None else {}),
                    "warnings": [asdict(warning) for warning in warnings]})
        return
    for warning in warnings:
        err.print(f"[bold yellow]warning:[/] {escape(str(warning))}", highlight=False, soft_wrap=True)
    said = f"; {runbooks} runbook{'s' if runbooks != 1 else ''}" if runbooks is not None else ""
    said += f"; {checklists} checklists" if checklists is not None else ""
    out.print(f"{path}: valid: {summary_line(inventory)}{said}")


def _runbooks(inventory: Inventory, path: Path) -> int | None:
    """How many runbooks the inventory's runbooks directory holds, each checked against the
    inventory, and every alert rule that names a runbook naming one (ConfigError with file and
    line of every problem); None when it names no directory."""
    from opsplane.config.yamlsource import parse
    from opsplane.runbooks.loader import catalog, rule_problems

    found = catalog(inventory, path.resolve().parent)
    wrong = rule_problems(inventory, found)
    if wrong:
        doc = parse(path.read_text(), str(path))
        raise ConfigError([doc.problem(at, message) for at, message in wrong])
    if inventory.runbooks.dir is None:
        return None
    # the shipped runbooks are checked too, but counted are the inventory's own
    return sum(1 for loaded in found.values() if not loaded.builtin)


def _checklists(inventory: Inventory, path: Path) -> int | None:
    """How many checklists `serve` runs, each file and schedule checked (ConfigError with file and
    line of every problem); None without a `checklists:` section."""
    if inventory.checklists is None:
        return None
    from opsplane.checklists.loader import catalog

    catalog(inventory, path.resolve().parent, inventory_file=path)
    return len(inventory.checklists.planned())


def summary(inventory: Inventory) -> dict[str, Any]:
    """What the inventory holds, in numbers: platform, components per section, checks."""
    return {
        "platform": inventory.platform.name,
        "components": {section: len(getattr(inventory, section)) for section in SECTIONS},
        "checks": sum(len(component.checks) for _, _, component in inventory.components()),
        "environments": list(inventory.environments),
        "default_environment": inventory.platform.default_environment,
    }


def summary_line(inventory: Inventory) -> str:
    """'platform shop, 1 service, 0 databases, ..., 1 check; environments production, staging'."""
    facts = summary(inventory)
    counts = [*facts["components"].items(), ("checks", facts["checks"])]
    return (f"platform {facts['platform']}, "
            + ", ".join(f"{n} {section if n != 1 else _SINGULAR[section]}" for section, n in counts)
            + f"; environments {', '.join(facts['environments'])}"
            + f" (default {facts['default_environment']})")


@app.command()
def schema(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
) -> None:
    """Print the JSON Schema of opsplane.yaml, for editors (yaml-language-server) and CI."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write the schema to {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)
