"""The root command mounts every domain's commands, except for `serve`, which gets only its
own so that the long-running control plane does not carry the others' imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsplane.cli import invoked_command


@pytest.mark.parametrize(("argv", "command"), [
    (["serve", "--port", "0"], "serve"),
    (["-c", "serve.yaml", "health"], "health"),
    (["--config", "x.yaml", "serve"], "serve"),
    (["--help"], None),
    ([], None),
])
def test_the_invoked_command_is_found_after_the_root_options(argv: list[str], command: str | None) -> None:
    assert invoked_command(argv) == command


def test_serve_runs_without_the_other_domains_loaded() -> None:
    probe = ("import sys; from opsplane import cli; cli._register('serve'); "
             "print(sorted(m for m in sys.modules if m.startswith('opsplane.') "
             "and m.endswith('.cli') and m.count('.') == 2))")  # opsplane.<domain>.cli
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
