"""`serve`'s checklist worker: runs each scheduled checklist at its time and keeps the report.

Every round it works out, for each list the inventory's `checklists:` section plans, the most
recent time it was due (a cron expression on the section's wall clock: 09:00 in Europe/Berlin
is 09:00 in summer and in winter, and a time the spring change skips or the autumn change
repeats fires once; `backup.schedule`). A time that passed less than `late` ago is claimed
(`checklist-slot:<name>:<slot>`) and run; a claim is never given back, so a second replica, or
this one after a restart, does not run the same slot again. The run reads the control plane's
own samples for its PromQL items."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsplane.runbooks.flows import LivePlatform
from opsplane.workers import LoopWorker, WorkerContext

POLL = 60.0
# A claimed slot stays claimed: a checklist is a report of one moment, never taken again.
SLOT_LEASE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Slot:
    """What is due at `at` (a checklist, a job), and the claim that runs it once: `kind` names
    the claims' family ("checklist", "report")."""

    name: str
    at: datetime
    kind: str = "checklist"

    @property
    def key(self) -> str:
        return f"{self.kind}-slot:{self.name}:{self.at.isoformat()}"


def due_slots(planned: dict[str, tuple[str, str]], *, now: datetime, late: float,
              kind: str = "checklist") -> list[Slot]:
    """What is planned whose latest time is at or before `now` and at most `late` seconds ago. Pure."""
    from opsplane.backup.schedule import parse_cron

    found = []
    for name, (cron, tz) in planned.items():
        at = parse_cron(cron).previous_at_or_before(now, tz)
        if now - at <= timedelta(seconds=late):
            found.append(Slot(name, at, kind))
    return found


def next_time(planned: dict[str, tuple[str, str]], *, now: datetime) -> datetime | None:
    """When the next list is due after `now`."""
    from opsplane.backup.schedule import parse_cron

    times = [parse_cron(cron).next_after(now, tz) for cron, tz in planned.values()]
    return min(times, default=None)


class ChecklistWorker(LoopWorker):
    """The scheduled checklists. Every replica may run it: each slot is claimed first."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("checklists", ctx, stuck_after=3600.0)  # a round may probe every check
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    async def run(self) -> None:
        await self.every(POLL, self.round, doing="running the checklists")

    async def round(self) -> datetime | None:
        """Run what is due now; when the next list is due."""
        settings = self.ctx.inventory.checklists
        assert settings is not None
        planned = settings.planned()
        now = self.ctx.clock.now()
        for slot in due_slots(planned, now=now, late=settings.late):
            claim = await self.ctx.in_store(self._claim, slot)
            if claim is not None:
                await asyncio.to_thread(self._run, slot)
                await self.ctx.in_store(self._finish, claim)
        return next_time(planned, now=self.ctx.clock.now())

    def _claim(self, slot: Slot) -> Any:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, slot.key, holder=self.holder, now=self.ctx.clock.now(),
                               lease=SLOT_LEASE)

    def _finish(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.finish(session, claim, self.ctx.clock.now())

    def _run(self, slot: Slot) -> None:
        from opsplane.checklists import flows
        from opsplane.checklists.loader import get

        try:
            checklist = get(self.ctx.inventory, self.ctx.inventory_dir, slot.name)
            flows.run(self.ctx.store, ServePlatform.of(self.ctx), checklist, clock=self.ctx.clock,
                      trigger="schedule", requested_by="opsplane", slot=slot.at)
        except Exception as exc:  # a checklist file broken since serve started: counted, next slot tried
            self.failed(exc)


class ServePlatform(LivePlatform):
    """The live platform, with PromQL asked of `serve`'s own samples (`source()`: its sample
    store, None while nothing is scraped), or of its Prometheus when the metrics come from one."""

    def __init__(self, inventory: Any, *, base_dir: Path, store: Any, clock: Any,
                 environ: Mapping[str, str] | None, source: Callable[[], Any]) -> None:
        super().__init__(inventory, base_dir=base_dir, store=store, clock=clock, environ=environ)
        self.source = source

    @classmethod
    def of(cls, ctx: WorkerContext) -> ServePlatform:
        def source() -> Any:
            return ctx.samples.locked_source() if ctx.samples is not None else None

        return cls(ctx.inventory, base_dir=ctx.inventory_dir, store=ctx.store, clock=ctx.clock,
                   environ=ctx.environ, source=source)

    def _prometheus(self) -> Any:
        if self.inventory.metrics.source == "prometheus":
            return super()._prometheus()
        return _OwnSamples(self.source)


class _OwnSamples:
    """The control plane's sample store answering as Prometheus's query API does."""

    def __init__(self, source: Callable[[], Any]) -> None:
        self.source = source

    def query(self, expr: str, at: float) -> dict[str, Any]:
        from opsplane.metrics.promql import InstantVector, Scalar, instant
        from opsplane.metrics.store import SampleStore

        source = self.source()
        value = instant(expr, source if source is not None else SampleStore(), at)
        if isinstance(value, InstantVector):
            return {"resultType": "vector", "result": [
                {"metric": dict(labels), "value": [at, repr(v)]} for labels, v in value.samples]}
        if isinstance(value, Scalar):
            return {"resultType": "scalar", "result": [at, repr(value.value)]}
        return {"resultType": "string", "result": [at, str(getattr(value, "value", value))]}

    def close(self) -> None:
        pass


def build(ctx: WorkerContext) -> ChecklistWorker | None:
    """Only when the inventory has a `checklists:` section."""
    return ChecklistWorker(ctx) if ctx.inventory.checklists is not None else None
