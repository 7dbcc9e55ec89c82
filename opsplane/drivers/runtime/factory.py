"""Which driver runs the inventory's components: `runtime.driver` (process today)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplane.drivers.runtime.base import RuntimeDriver, RuntimeWatch
from opsplane.errors import OpsplaneError

if TYPE_CHECKING:
    from opsplane.config.models import Inventory


def open_runtime(
    inventory: Inventory,
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    actor: str = "system:runtime",
    shares: Any = None,
) -> RuntimeDriver:
    """The driver named by `inventory.runtime.driver`. Relative paths of the inventory (the state
    directory, a component's `cwd`) are taken from `base_dir`, the inventory file's directory
    (default: the current directory); `actor` is who the recorded events name; `shares`, a
    function returning how deploys under way split each service's requests, is kept when a
    proxy's routes are rebuilt (`opsplane up`, `scale`)."""
    base = (base_dir or Path.cwd()).resolve()
    driver = inventory.runtime.driver
    if driver == "process":
        from opsplane.drivers.runtime.process import ProcessRuntime

        return ProcessRuntime(inventory, base_dir=base, environ=environ, actor=actor, shares=shares)
    raise OpsplaneError(f"runtime driver {driver!r} is not available in this opsplane")


def watched_runtime(inventory: Inventory, *, base_dir: Path) -> RuntimeWatch | None:
    """The inventory's runtime for `serve` to follow (its state directory under `base_dir`, the
    inventory file's directory), or None when no component has a `run` section."""
    if not inventory.runs_services:
        return None
    return open_runtime(inventory, base_dir=base_dir)
