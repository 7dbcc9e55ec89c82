"""`serve`'s capacity worker: every `capacity.interval` each resource's use is read and kept.

The sample store holds an hour of scrapes; capacity trends need weeks. So every interval the
`Recorder` reads the host's CPU and memory, the configured filesystems and directories, and
through PromQL each service's database pool in use and request rate (`readings.py`), and
writes them to the store, each recording and its hour (`service.record`). Once an hour the
recordings older than `minutes_kept` and hours older than `hours_kept` are pruned. One replica
only: two would record the same host twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplane.capacity.readings import HostReader, Query, Readings, read_all
from opsplane.workers import STUCK_AFTER, LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.capacity.models import CapacitySettings
    from opsplane.clock import Clock
    from opsplane.store import Store

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0


class Recorder:
    """One recording of every resource, at the clock's time, into the store (blocking)."""

    def __init__(self, settings: CapacitySettings, store: Store, clock: Clock, *, base_dir: Path,
                 host: HostReader | None = None, query: Query | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.base_dir = base_dir
        self.host = host
        self.query = query
        self.problems: dict[str, str] = {}
        self._pruned = -math.inf

    def record_once(self) -> Readings:
        """Read every resource and keep what was read."""
        readings = self.read()
        self.write(readings)
        return readings

    def read(self) -> Readings:
        readings = read_all(self.settings, base_dir=self.base_dir, host=self.host, query=self.query)
        self.problems = dict(readings.problems)
        return readings

    def write(self, readings: Readings) -> None:
        from opsplane.capacity import service

        now = self.clock.now().replace(microsecond=0)
        with self.store.session() as session:
            service.record(session, readings.values, at=now)
            if now.timestamp() - self._pruned >= PRUNE_EVERY:
                service.prune(session, now=now, minutes_kept=self.settings.minutes_kept,
                              hours_kept=self.settings.hours_kept)
                self._pruned = now.timestamp()


class CapacityWorker(LoopWorker):
    """Records each resource's use every interval."""

    singleton = True

    def __init__(self, ctx: WorkerContext, settings: CapacitySettings) -> None:
        super().__init__("capacity", ctx, stuck_after=max(STUCK_AFTER, 3 * settings.interval))
        self.settings = settings
        self.recorder = Recorder(settings, ctx.store, ctx.clock, base_dir=ctx.inventory_dir,
                                 host=HostReader(), query=self._query)

    def _query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        from opsplane.reports.jobs import JobEnv

        ctx = self.ctx

        def source() -> Any:
            return ctx.samples.locked_source() if ctx.samples is not None else None

        env = JobEnv(ctx.inventory, ctx.inventory_dir, ctx.store, ctx.clock,
                     environ=dict(os.environ if ctx.environ is None else ctx.environ), samples=source)
        return env.query(expr)

    async def run(self) -> None:
        await self.every(self.settings.interval, self._round, doing="recording capacity")

    async def _round(self) -> datetime:
        readings = await asyncio.to_thread(self.recorder.read)  # statvfs, a directory's walk, PromQL
        await self.ctx.in_store(self.recorder.write, readings)
        for resource, problem in readings.problems.items():
            log.info("capacity: %s not recorded: %s", resource, problem)
        return self.ctx.clock.now() + timedelta(seconds=self.settings.interval)


def build(ctx: WorkerContext) -> CapacityWorker | None:
    settings = ctx.inventory.capacity
    if settings is None:
        return None
    return CapacityWorker(ctx, settings)
