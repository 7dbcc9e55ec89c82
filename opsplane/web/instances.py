"""The instances the runtime runs, as the dashboard lists them.

This is the only place the dashboard touches `opsplane.drivers.runtime`. An inventory whose
components have no `run` section has nothing for a runtime to run and shows "no runtime";
a runtime that is not started shows its own message (which says to run `opsplane up`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError

if TYPE_CHECKING:
    from opsplane.drivers.runtime import InstanceStatus


class StatusSource(Protocol):
    """What the dashboard needs of a runtime driver."""

    def status(self) -> list[InstanceStatus]: ...


@dataclass(frozen=True)
class InstanceRow:
    """One running (or stopped) instance of a service; `track` is the release of the track it
    belongs to (another release run beside the service's own instances), None for those."""

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
    version: str | None = None
    track: str | None = None

    @classmethod
    def of(cls, status: InstanceStatus, now: datetime) -> InstanceRow:
        return cls(
            service=status.base_service, instance=str(status.instance), pid=status.pid, port=status.port,
            state=str(status.state), started_at=status.started_at, restarts=status.restarts,
            rss_bytes=status.rss_bytes, cpu_percent=status.cpu_percent, last_exit=status.last_exit,
            uptime=status.uptime_at(now), version=status.version, track=status.release,
        )


@dataclass(frozen=True)
class Instances:
    """What the runtime reports; `note` explains an empty list (no runtime, or its error)."""

    rows: tuple[InstanceRow, ...]
    note: str | None = None

    def of(self, service: str) -> Instances:
        return Instances(tuple(r for r in self.rows if r.service == service), self.note)


class RuntimeView:
    """Opens the inventory's runtime once, on first use, and reads its status on request.

    `driver` replaces opening one, for a caller that already holds it.
    """

    def __init__(self, inventory: Inventory, *, base_dir: Path, driver: StatusSource | None = None) -> None:
        self.inventory = inventory
        self.base_dir = base_dir
        self._driver = driver
        self._note: str | None = None
        self._opened = driver is not None

    def _open(self) -> None:
        self._opened = True
        if not self.inventory.runs_services:
            self._note = "no runtime: no component of the inventory has a run section"
            return
        # Imported here: a control plane whose dashboard nobody opens does not carry it.
        from opsplane.drivers.runtime import open_runtime

        try:
            self._driver = open_runtime(self.inventory, base_dir=self.base_dir, actor="system:dashboard")
        except OpsplaneError as exc:
            self._note = f"runtime unavailable: {exc}"

    async def instances(self, now: datetime) -> Instances:
        """Every instance the runtime knows, or none with a note saying why."""
        if not self._opened:
            self._open()
        if self._driver is None:
            return Instances((), self._note)
        try:
            found = await asyncio.to_thread(self._driver.status)
        except OpsplaneError as exc:  # e.g. nothing started: the message says what to do
            return Instances((), str(exc))
        except OSError as exc:
            return Instances((), f"the runtime did not answer: {exc}")
        return Instances(tuple(InstanceRow.of(item, now) for item in found))
