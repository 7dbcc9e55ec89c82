"""The instances a runtime driver runs, as the dashboard lists them.

The runtime drivers (`opsplane.drivers.runtime`: `open_runtime(inventory, base_dir=...)`, a
driver whose `status()` lists `InstanceStatus` values) are optional: an inventory without a
`runtime` section, or an opsplane without the module, shows "no runtime" instead of a list.
This module is the only place the dashboard touches them.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError


@dataclass(frozen=True)
class InstanceRow:
    """One running (or stopped) instance of a service."""

    service: str
    instance: str
    pid: int | None
    port: int | None
    state: str
    started_at: datetime | None
    restarts: int
    rss_bytes: int | None
    cpu_percent: float | None
    last_exit: str | None
    uptime: float | None


@dataclass(frozen=True)
class Instances:
    """What the runtime reports; `note` explains an empty list (no runtime, or its error)."""

    rows: tuple[InstanceRow, ...]
    note: str | None = None

    def of(self, service: str) -> Instances:
        return Instances(tuple(r for r in self.rows if r.service == service), self.note)


class RuntimeView:
    """Opens the inventory's runtime once, on first use, and reads its status on request.

    `driver` replaces opening one (any object with `status()`), for a caller that already
    holds it.
    """

    def __init__(self, inventory: Inventory, *, base_dir: Path, driver: Any = None) -> None:
        self.inventory = inventory
        self.base_dir = base_dir
        self._driver: Any = driver
        self._note: str | None = None
        self._opened = driver is not None

    def _open(self) -> None:
        self._opened = True
        if getattr(self.inventory, "runtime", None) is None:
            self._note = "no runtime: the inventory has no runtime section"
            return
        if not any(getattr(c, "run", None) for _, _, c in self.inventory.components()):
            self._note = "no runtime: no component of the inventory has a run section"
            return
        try:
            open_runtime = importlib.import_module("opsplane.drivers.runtime").open_runtime
        except (ImportError, AttributeError):
            self._note = "no runtime: this opsplane has no runtime drivers"
            return
        try:
            self._driver = open_runtime(self.inventory, base_dir=self.base_dir)
        except OpsplaneError as exc:
            self._note = f"runtime unavailable: {exc}"

    async def instances(self) -> Instances:
        """Every instance the runtime knows, or none with a note saying why."""
        if not self._opened:
            self._open()
        if self._driver is None:
            return Instances((), self._note)
        status = self._driver.status
        try:
            if inspect.iscoroutinefunction(status):
                found = await status()
            else:
                found = await asyncio.to_thread(status)
        except OpsplaneError as exc:  # e.g. nothing started: the message says what to do
            return Instances((), str(exc))
        except OSError as exc:
            return Instances((), f"the runtime did not answer: {exc}")
        return Instances(tuple(_row(item) for item in _items(found)))


def _items(found: Any) -> Iterable[Any]:
    return found.values() if isinstance(found, dict) else found


def _row(item: Any) -> InstanceRow:
    def field(name: str, default: Any = None) -> Any:
        return getattr(item, name, default)

    return InstanceRow(
        service=str(field("service", "")),
        instance=str(field("instance", "")),
        pid=field("pid"),
        port=field("port"),
        state=str(getattr(field("state", ""), "value", field("state", ""))),
        started_at=field("started_at"),
        restarts=int(field("restarts", 0) or 0),
        rss_bytes=field("rss_bytes"),
        cpu_percent=field("cpu_percent"),
        last_exit=None if field("last_exit") is None else str(field("last_exit")),
        uptime=field("uptime"),
    )
