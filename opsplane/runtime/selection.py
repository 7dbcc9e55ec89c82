"""Which components a runtime command may act on, and clear errors for those it may not."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from opsplane.config.models import Component, Inventory
from opsplane.drivers.runtime.releases import check_version, split_group
from opsplane.errors import UsageError


def runnable(inventory: Inventory) -> dict[str, Component]:
    """Components with a `run` section, by name, in file order, and the proxies opsplane runs in
    front of them (their program comes from the traffic driver, not from a `run` section)."""
    from opsplane.drivers.traffic.routes import managed_proxies

    proxies = managed_proxies(inventory)
    return {name: component for _, name, component in inventory.components()
            if component.run or name in proxies}


def select(inventory: Inventory, names: Sequence[str] | None) -> list[str]:
    """The names asked for (every runnable component when None or empty), checked: each must
    exist and have a `run` section. Raises UsageError saying what to do otherwise."""
    choices = runnable(inventory)
    if not names:
        if not choices:
            raise UsageError(
                "no component of the inventory has a run section: add one (argv, and optionally "
                "env, instances, restart) to each component opsplane should run; see docs/runtime.md"
            )
        return list(choices)
    return [require(inventory, name) for name in dict.fromkeys(names)]


def require(inventory: Inventory, name: str) -> str:
    """`name`, when it is a runnable component; raises UsageError otherwise."""
    known = {found: component for _, found, component in inventory.components()}
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        runnable_names = ", ".join(runnable(inventory)) or "none"
        raise UsageError(f"unknown service {name!r}{hint} (services with a run section: {runnable_names})")
    if name not in runnable(inventory):
        raise UsageError(
            f"{name!r} has no run section, so opsplane does not run it; add run.argv to it in the "
            "inventory to manage it with up, down and scale"
        )
    return name


def require_group(inventory: Inventory, name: str) -> str:
    """`name`, when it is a runnable component or a track of one (`catalog@v2`); raises
    UsageError otherwise."""
    service, release = split_group(name)
    require(inventory, service)
    if release is not None:
        check_version(release)
    return name
