"""`serve`'s reports worker: runs each job at its time, keeps the report, publishes its series.

Every round it works out, for each job the `jobs:` section plans, the most recent time it was
due (a cron expression on the section's wall clock, as the checklists do). A time that passed
less than `late` ago is claimed (`report-slot:<job>:<slot>`) and run on a thread of its own;
a claim is never given back, so a second replica, or this one after a restart, does not run
the same slot again. After each run, and at start from the store, it publishes for every job
its last report's findings as `opsplane_report_findings{job, severity}` and its outcome as
`opsplane_report_failed{job}`, which the built-in rules ReportCritical and ReportFailed read.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from opsplane.checklists.worker import Slot, due_slots, next_time
from opsplane.reports.jobs import JobEnv, get, planned, run_and_save
from opsplane.workers import LoopWorker, WorkerContext

POLL = 60.0
SLOT_LEASE = 7 * 24 * 3600.0  # a slot stays claimed: a report is of one moment, never taken again
FINDINGS = "opsplane_report_findings"
FAILED = "opsplane_report_failed"
Labels = tuple[tuple[str, str], ...]


def report_samples(latest: dict[str, tuple[str, dict[str, int]]], *, env: str) -> list[tuple[Labels, float]]:
    """The series of each job's last report: (outcome, counts) by job. Only what is found has
    a series, so a job whose next report is clean drops out and its alert resolves."""
    samples: list[tuple[Labels, float]] = []
    for job, (outcome, counts) in sorted(latest.items()):
        common = {"job": "opsplane", "env": env, "report": job}
        if outcome == "failed":
            samples.append((tuple(sorted({"__name__": FAILED, **common}.items())), 1.0))
        for severity in ("warning", "critical"):
            if counts.get(severity):
                labels = {"__name__": FINDINGS, **common, "severity": severity}
                samples.append((tuple(sorted(labels.items())), float(counts[severity])))
    return samples


class ReportsWorker(LoopWorker):
    """The scheduled jobs. Every replica may run it: each slot is claimed first."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("reports", ctx, stuck_after=3600.0)  # a db report or an audit can take minutes
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.latest: dict[str, tuple[str, dict[str, int]]] = {}
        self.samples: list[tuple[Labels, float]] = []

    async def run(self) -> None:
        await self.ctx.in_store(self._load)
        self._publish()
        await self.every(POLL, self.round, doing="running the scheduled jobs")

    async def round(self) -> Any:
        settings = self.ctx.inventory.jobs
        assert settings is not None
        plan = planned(settings)
        for slot in due_slots(plan, now=self.ctx.clock.now(), late=settings.late, kind="report"):
            claim = await self.ctx.in_store(self._claim, slot)
            if claim is not None:
                row = await asyncio.to_thread(self._run, slot)
                await self.ctx.in_store(self._finish, claim)
                if row is not None:
                    self.latest[row.job] = (row.outcome, dict(row.counts))
                    self._publish()
        return next_time(plan, now=self.ctx.clock.now())

    def _publish(self) -> None:
        self.samples = report_samples(self.latest, env=self.ctx.env)

    def _load(self) -> None:
        from opsplane.reports import service
        from opsplane.reports.jobs import JOBS

        with self.ctx.store.session() as session:
            for job in JOBS:
                row = service.latest(session, job.name)
                if row is not None:
                    self.latest[job.name] = (row.outcome, dict(row.counts))

    def _claim(self, slot: Slot) -> Any:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, slot.key, holder=self.holder, now=self.ctx.clock.now(),
                               lease=SLOT_LEASE)

    def _finish(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.finish(session, claim, self.ctx.clock.now())

    def _run(self, slot: Slot) -> Any:
        ctx = self.ctx

        def source() -> Any:
            return ctx.samples.locked_source() if ctx.samples is not None else None

        env = JobEnv(ctx.inventory, ctx.inventory_dir, ctx.store, ctx.clock,
                     environ=dict(os.environ if ctx.environ is None else ctx.environ), samples=source)
        try:
            return run_and_save(get(slot.name), env, trigger="schedule", requested_by="opsplane",
                                slot=slot.at)
        except Exception as exc:  # the store unwritable: counted, the next slot tried
            self.failed(exc)
            return None


def build(ctx: WorkerContext) -> ReportsWorker | None:
    if ctx.inventory.jobs is None:
        return None
    worker = ReportsWorker(ctx)
    ctx.reports = worker
    return worker
