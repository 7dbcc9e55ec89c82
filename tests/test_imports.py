"""Which opsplane modules may import which, read from the source with `ast` (nothing is
imported, so an import inside a function or under TYPE_CHECKING counts as much as one at the
top of a file).

The root command (`opsplane.cli`) imports every domain's commands to mount them; a domain that
imported it back would close a circle. What the commands share lives in `opsplane.cli_support`.
The control plane (`opsplane.server`) is run by the commands that start one; the domains it
serves are imported by it, never the other way round."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "opsplane"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, package: str) -> Iterator[str]:
    """Every module `source` (a file of `package`) names in an import: `from a.b import c`
    names `a.b` and `a.b.c` (c may be a module); relative imports are resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            named = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                named = ".".join([*parts, *([node.module] if node.module else [])])
            yield named
            yield from (f"{named}.{alias.name}" for alias in node.names)


def _importers(target: str) -> dict[str, set[str]]:
    """Files under opsplane/ (relative to the repository) that import `target`."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        hits = {named for named in _imports(path.read_text(), package)
                if named == target or named.startswith(f"{target}.")}
        if hits:
            found[str(path.relative_to(PACKAGE.parent))] = hits
    return found


@pytest.mark.parametrize("form", [
    "import opsplane.cli", "import opsplane.cli as root", "from opsplane.cli import config_path",
    "from opsplane import cli", "from .. import cli", "def f():\n    from ..cli import app",
    "if TYPE_CHECKING:\n    from ..cli import app",
])
def test_every_form_of_import_is_read(form: str) -> None:
    assert "opsplane.cli" in set(_imports(form + "\n", "opsplane.health"))


def test_a_module_of_a_similar_name_is_not_taken_for_it() -> None:
    assert "opsplane.cli" not in set(_imports("from opsplane import cli_support\n", "opsplane.health"))


def test_no_module_but_the_entry_point_imports_the_root_command() -> None:
    importers = _importers("opsplane.cli")
    assert set(importers) == {"opsplane/__main__.py"}, importers


# The commands that run a control plane: `opsplane serve`, and `opsplane demo`, which runs one
# over the demo platform.
RUN_A_CONTROL_PLANE = {"opsplane/server_cli.py"}  # the demo composes through it too


def test_only_the_commands_that_run_a_control_plane_import_it() -> None:
    importers = _importers("opsplane.server")
    assert set(importers) <= RUN_A_CONTROL_PLANE, sorted(set(importers) - RUN_A_CONTROL_PLANE)
