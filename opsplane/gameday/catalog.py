"""The scenarios a game day can play on the platform the inventory describes: those opsplane
ships for its components, replaced or added to by the inventory's `gamedays.scenarios`, and the
load-time checks of that section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsplane.gameday.models import SHOP_ADMIN_ENV, Scenario

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

def shipped(inventory: Inventory) -> dict[str, Scenario]:
    """The scenarios opsplane offers for the components of `inventory`: kill each service the
    runtime runs; errors and latency on each service with the shop's fault injection; stop each
    database and cache; fill the disk of each host with a host check."""
    found: dict[str, Scenario] = {}
    for name, service in inventory.services.items():
        if service.run is None:
            continue
        found[f"kill-{name}"] = Scenario(kind="kill", target=name, description=f"{name}'s instances stop")
        if SHOP_ADMIN_ENV in service.run.secret_env:
            found[f"{name}-errors"] = Scenario(kind="errors", target=name,
                                               description=f"half of {name}'s requests fail")
            found[f"{name}-latency"] = Scenario(kind="latency", target=name,
                                                description=f"every request to {name} waits 2 s more")
    for name in inventory.databases:
        found[f"stop-{name}"] = Scenario(kind="stop-database", target=name, severity="P0",
                                         description=f"the PostgreSQL server of {name} stops")
    for name in inventory.caches:
        found[f"stop-{name}"] = Scenario(kind="stop-cache", target=name,
                                         description=f"the Redis server of {name} stops")
    for name, host in inventory.hosts.items():
        if any(check.type == "host" for check in host.checks):
            found[f"fill-disk-{name}"] = Scenario(kind="fill-disk", target=name, severity="P2",
                                                  description=f"the disk {name}'s host check watches "
                                                  "fills up")
    return found


def scenarios(inventory: Inventory) -> dict[str, Scenario]:
    """Every scenario a game day can play: the shipped ones, replaced or added to by the
    inventory's."""
    return {**shipped(inventory), **inventory.gamedays.scenarios}


def source_of(inventory: Inventory, name: str) -> str:
    """Where a scenario comes from: 'inventory' or 'shipped'."""
    return "inventory" if name in inventory.gamedays.scenarios else "shipped"


_SECTION = {"kill": "services", "errors": "services", "latency": "services", "stop-database": "databases",
            "stop-cache": "caches", "fill-disk": "hosts"}


def gameday_problems(inv: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """Scenarios whose target is not a component of their kind's section, watched components that
    do not exist, and a schedule naming no scenario; with their paths in the file."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names = {name for _, name, _ in inv.components()}
    for name, scenario in inv.gamedays.scenarios.items():
        at = ("gamedays", "scenarios", name)
        section = _SECTION[scenario.kind]
        if scenario.target not in getattr(inv, section):
            known = ", ".join(getattr(inv, section)) or "none"
            problems.append(((*at, "target"), f"{scenario.kind} is about one of the inventory's {section}; "
                             f"{scenario.target!r} is not one (there: {known})"))
        for i, other in enumerate(scenario.watch):
            if other not in names:
                problems.append(((*at, "watch", i), f"unknown component {other!r}"))
    schedule = inv.gamedays.schedule
    if schedule is not None and schedule.scenario not in scenarios(inv):
        problems.append((("gamedays", "schedule", "scenario"),
                         f"unknown scenario {schedule.scenario!r}; expected one of "
                         f"{', '.join(sorted(scenarios(inv))) or 'none'}"))
    return problems
