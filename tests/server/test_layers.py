"""The control plane's composition sits above everything it composes: the pages, the routes
and the domains read what `serve` knows through `opsplane.live`, and only `opsplane serve`
(`server_cli`) builds the composition in `opsplane.server`."""

from __future__ import annotations

import ast
from pathlib import Path

import opsplane

ROOT = Path(opsplane.__file__).parent
# the composition itself, and the command that runs it
ALLOWED = {"server.py", "server_cli.py"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_serve_command_imports_the_composition() -> None:
    importers = sorted(
        str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py")
        if str(path.relative_to(ROOT)) not in ALLOWED and "opsplane.server" in _imports(path))
    assert importers == []
