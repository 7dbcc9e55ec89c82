"""The `opsplane` command run from this checkout (an installed opsplane may be another one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import opsplane
from tests.support.cli import Opsplane

CHECKOUT = str(Path(opsplane.__file__).resolve().parents[1])


def this_checkout(environ: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose `python -m opsplane` imports the code under test."""
    return {**(environ or {}), "PYTHONPATH": CHECKOUT}


def command(tmp_path: Path, inventory: dict[str, Any] | None = None, **environ: str) -> Opsplane:
    return Opsplane(tmp_path, inventory or {"platform": {"name": "shop"}}, this_checkout(environ))


def subprocess_env() -> dict[str, str]:
    return this_checkout(dict(os.environ))
