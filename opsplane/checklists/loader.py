"""Finding the checklists: those opsplane ships (`runbooks/builtin/checklists/`) and the
inventory's `checklists.dir`, each a runbook file of looks only, checked against the inventory
with file, line and field of every problem."""

from __future__ import annotations

from pathlib import Path

from opsplane.checklists.models import DEFAULT_CRON, ITEM_KINDS
from opsplane.config.models import Inventory
from opsplane.config.yamlsource import parse
from opsplane.errors import ConfigError, ConfigProblem, UsageError
from opsplane.runbooks.loader import BUILTIN_DIR, LoadedRunbook, load_dir

SHIPPED_DIR = BUILTIN_DIR / "checklists"


class NoSuchChecklist(UsageError):
    """No checklist has that name."""


def checklists_dir(inventory: Inventory, base_dir: Path) -> Path | None:
    """The inventory's checklist directory (relative paths from the inventory's directory)."""
    settings = inventory.checklists
    return None if settings is None or settings.dir is None else base_dir / settings.dir


def catalog(inventory: Inventory, base_dir: Path, *, inventory_file: Path | None = None
            ) -> dict[str, LoadedRunbook]:
    """Every checklist by name, the shipped ones and the site's over them; ConfigError listing
    every problem: a step that is not a look, a schedule naming no checklist (located in
    `inventory_file` when given)."""
    found = {r.name: r for r in _checked(load_dir(SHIPPED_DIR, inventory, builtin=True))}
    directory = checklists_dir(inventory, base_dir)
    if directory is not None:
        if not directory.is_dir():
            raise ConfigError([ConfigProblem(str(directory), None, None, "checklists.dir",
                                             "no such directory (checklists.dir in the inventory)")])
        found.update({r.name: r for r in _checked(load_dir(directory, inventory))})
    problems = []
    settings = inventory.checklists
    doc = parse(inventory_file.read_text(), str(inventory_file)) if inventory_file else None
    for name, given in (settings.schedules.items() if settings else ()):
        why = None
        if name not in found:
            why = f"no checklist named {name!r}; the checklists: {', '.join(sorted(found))}"
        elif given.expression(DEFAULT_CRON.get(name)) is None:
            why = "give at (HH:MM) or cron for a checklist of the site's own"
        if why is not None:
            at = ("checklists", "schedules", name)
            problems.append(doc.problem(at, why, at_key=True) if doc else
                            ConfigProblem("inventory", None, None, ".".join(at), why))
    if problems:
        raise ConfigError(problems)
    return dict(sorted(found.items()))


def get(inventory: Inventory, base_dir: Path, name: str, *, inventory_file: Path | None = None
        ) -> LoadedRunbook:
    """The checklist `name`; a usage error listing the others when there is none."""
    found = catalog(inventory, base_dir, inventory_file=inventory_file)
    if name not in found:
        raise NoSuchChecklist(f"no checklist {name!r}; the checklists: {', '.join(found)}")
    return found[name]


def _checked(loaded: list[LoadedRunbook]) -> list[LoadedRunbook]:
    """The runbooks, when every step is a look that is safe to run unattended and none takes a
    parameter (nobody gives one to a scheduled run)."""
    problems: list[ConfigProblem] = []
    for item in loaded:
        doc = None
        for index, step in enumerate(item.runbook.steps):
            why = None
            if step.kind not in ITEM_KINDS:
                why = (f"a checklist step is one of {', '.join(ITEM_KINDS)}; {step.kind} changes or waits: "
                       "put it in a runbook")
            elif not step.safe:
                why = "a checklist runs with nobody watching: every step must be safe"
            if why is not None:
                doc = doc or parse(Path(item.file).read_text(), item.file)
                problems.append(doc.problem(("steps", index, "kind"), why))
        missing = [name for name, p in item.runbook.parameters.items() if p.default is None]
        if missing:
            doc = doc or parse(Path(item.file).read_text(), item.file)
            problems.append(doc.problem(("parameters",), f"a checklist's parameters need defaults: "
                                        f"{', '.join(missing)}"))
    if problems:
        raise ConfigError(problems)
    return loaded
