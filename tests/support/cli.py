"""The `opsplane` command as a person runs it: a subprocess over an inventory written from a
dict and a SQLite store in a temporary directory, with its exit code checked.

The store is made up front, as on an installation where `serve` has run: commands that only
read refuse to work where there is no store yet (tests/server/test_cli_reads.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from opsplane.store import Store


class Opsplane:
    """The command against one inventory and one store; `environ` adds to a bare environment."""

    def __init__(self, tmp_path: Path, inventory: Mapping[str, Any],
                 environ: Mapping[str, str] | None = None) -> None:
        self.cwd = tmp_path
        (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(dict(inventory), sort_keys=False))
        self.env = {"OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db", "PATH": "/usr/bin:/bin",
                    "USER": "ana", "COLUMNS": "200", **(environ or {})}
        Store.open(self.env["OPSPLANE_DATABASE_URL"]).close()

    def __call__(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        """The command's run, its exit code checked against `code` (None: any code)."""
        ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", *args],
                             capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=60)
        assert code is None or ran.returncode == code, (ran.stdout, ran.stderr)
        assert "Traceback" not in ran.stderr
        return ran

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)
