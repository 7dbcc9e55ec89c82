"""Every command's --help shows each option's help as it was written: help is rendered as
Rich markup, where text in square brackets is taken for a style and silently dropped
("Inventory file [default: opsplane.yaml]." once read "Inventory file .")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from opsplane import cli


def _commands() -> Iterator[tuple[list[str], Any]]:
    cli._register(None)

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(cli.app), [])


COMMANDS = list(_commands())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "opsplane" for p, _ in COMMANDS])
def test_every_option_help_is_shown_in_full(path: list[str], command: Any) -> None:
    shown = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.replace("│", " ").split())
    for param in command.params:
        if getattr(param, "hidden", False):
            continue  # options for tests, left out of the help on purpose
        written = " ".join((getattr(param, "help", None) or "").split())
        assert written in text, f"{' '.join(path)} {param.name}: {written!r} is not shown whole"


def test_the_config_option_says_where_the_inventory_is_looked_for() -> None:
    shown = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "300"})
    assert "Inventory file (default: opsplane.yaml in the current directory)" in shown.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "opsplane" for p, _ in COMMANDS])
def test_every_command_summary_is_one_line(path: list[str], command: Any) -> None:
    # The list of commands shows a summary's line breaks as they were written in the source.
    summary = (command.help or "").strip().split("\n\n", 1)[0]
    assert "\n" not in summary, f"{' '.join(path)}: {summary!r}"
