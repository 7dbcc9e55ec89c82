"""The health worker of `serve`: the probe scheduler and the writer of state changes.

Each result updates the latest results, the probe history (the dashboard's charts) and
opsplane's own metrics; a result that changes a check's state becomes a Transition, queued and
written (event + `check_states` row) in batches on the store's threads, so the event loop
never waits on the database. A check that starts, reaches its threshold of or stops failing
wakes the alerts worker, whose rules read the failures as `opsplane_check_failures`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select

from opsplane.drivers.probes import Probe, run_probe
from opsplane.events import service as events
from opsplane.health.flows import prepare
from opsplane.health.history import ProbeHistory
from opsplane.health.models import ProbeResult, State
from opsplane.health.scheduler import ProbeScheduler
from opsplane.health.tables import CheckState
from opsplane.health.targets import CheckTarget, check_targets
from opsplane.health.transitions import KnownState, StateTracker, Transition
from opsplane.workers import STUCK_AFTER, LoopWorker, WorkerContext

log = logging.getLogger("opsplane.server")
ACTOR = "system:control-plane"
WRITE_CHUNK = 500
RETRY_DELAY = 5.0


class HealthWorker(LoopWorker):
    """Runs every check of the environment on its slot and records each change of state.

    One replica only: two would record every change twice."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("health", ctx, stuck_after=STUCK_AFTER)
        self.targets: list[CheckTarget] = check_targets(ctx.inventory, ctx.env)
        self.latest: dict[str, ProbeResult] = {}
        self.checked_at: dict[str, datetime] = {}
        self.failures: dict[str, int] = {}  # check id -> CRITICAL results in a row
        # component -> (OK results, all results) since serve started: the checks SLIs' events
        self.tallies: dict[str, tuple[int, int]] = {}
        # What the dashboard charts of the checks: every check's last day of results at four
        # resolutions, 15 s to 24 min (512 bytes a check, 5 MB at 10,000).
        self.history = ProbeHistory((t.id for t in self.targets), clock=ctx.clock)
        self.pending: list[Transition] = []
        self._tracker = StateTracker()
        self._write_soon = asyncio.Event()
        self._scheduler: ProbeScheduler | None = None
        self._probes: dict[str, Probe] = {}
        self._threshold = ctx.inventory.alerting.builtin_rules.thresholds.check_failures
        # how late the last result started against its slot, and when (time.monotonic())
        self._lateness = 0.0
        self._last_result: float | None = None
        self._began = time.monotonic()
        # no result for this long is late whatever the phases (a slot is within one interval)
        self._quiet = (min((t.interval for t in self.targets), default=0.0)
                       + max((t.timeout for t in self.targets), default=0.0))
        ctx.checks = self
        ctx.lookers.append(self)

    # --- reads ---------------------------------------------------------------------------

    def since(self, check_id: str) -> datetime | None:
        known = self._tracker.known.get(check_id)
        return known.since if known else None

    def lag(self) -> float:
        if not self.targets or not self.running:
            return 0.0
        quiet = time.monotonic() - (self._last_result or self._began) - self._quiet
        return max(0.0, self._lateness, quiet)

    # --- lifecycle ------------------------------------------------------------------------

    async def opening(self) -> None:
        # what the store recorded: a restart neither repeats a change nor loses one
        self._tracker = StateTracker(await self.ctx.in_store(self._load_known))
        self.ctx.metrics.watch(self.targets)
        self._began = time.monotonic()
        self._scheduler = ProbeScheduler(self.targets, run=self._run, on_result=self.on_result,
                                         on_skip=self.ctx.metrics.skip)

    async def run(self) -> None:
        assert self._scheduler is not None
        async with asyncio.TaskGroup() as group:
            group.create_task(self._scheduler.run_forever())
            group.create_task(self._writer())

    async def closing(self) -> None:
        """Write what is pending."""
        while batch := self.take_pending():
            await self.ctx.in_store(self.write, batch)

    def look_now(self, services: set[str]) -> list[asyncio.Future[Any]]:
        """Run the checks of `services` now, outside their slots."""
        if self._scheduler is None:
            return []
        return list(self._scheduler.run_now([t.id for t in self.targets if t.component in services]))

    # --- the hot path ---------------------------------------------------------------------

    async def _run(self, target: CheckTarget) -> ProbeResult:
        # Probes are built once (request bytes, TLS context, resolved secrets) and reused; a
        # check whose secret is missing is retried on its next slot.
        probe = self._probes.get(target.id)
        if probe is None:
            prepared = prepare(target, environ=self.ctx.environ, resolver=self.ctx.resolver)
            if isinstance(prepared, ProbeResult):
                return prepared
            probe = self._probes[target.id] = prepared
        return await run_probe(probe, target.timeout)

    def on_result(self, target: CheckTarget, result: ProbeResult, lateness: float) -> None:
        now = self.ctx.clock.now()
        self.latest[target.id] = result
        self.checked_at[target.id] = now
        self.history.record(target.id, result)
        ok, total = self.tallies.get(target.component, (0, 0))
        self.tallies[target.component] = (ok + (result.state is State.OK), total + 1)
        self.ctx.metrics.observe(target, result, lateness)
        self._last_run, self._lateness, self._last_result = now, lateness, time.monotonic()
        transition = self._tracker.observe(target.id, target.component, result, now)
        if transition is not None:
            self.pending.append(transition)
            self._write_soon.set()
        if result.state is State.CRITICAL:
            failures = self.failures[target.id] = self.failures.get(target.id, 0) + 1
            alerts = self.ctx.alerts
            # the rules run at once for a new failure or one that reached its threshold; until
            # alerting is running, every failing result is a reason to start it
            if failures in (1, self._threshold) or (alerts is not None and alerts.alerting is None):
                self.ctx.wake("alerts")
        elif self.failures.pop(target.id, None) is not None:
            self.ctx.wake("alerts")

    # --- persistence ----------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            await self._write_soon.wait()
            self._write_soon.clear()
            batch = self.take_pending()
            if batch:
                try:
                    await self.ctx.in_store(self.write, batch)
                except Exception as exc:  # noqa: BLE001 - keep watching; retry the batch later
                    self.failed(exc)
                    log.exception("could not write %d state changes; retrying in %g s",
                                  len(batch), RETRY_DELAY)
                    self.pending[:0] = batch
                    self._write_soon.set()
                    await asyncio.sleep(RETRY_DELAY)
                    continue
            if not self.pending:
                await asyncio.sleep(self.ctx.flush_interval)  # let the next changes gather

    def take_pending(self) -> list[Transition]:
        # At most WRITE_CHUNK per transaction: the first round of a large inventory is
        # thousands of state changes, and one transaction of them all would hold every ORM
        # object in memory at once.
        batch, self.pending = self.pending[:WRITE_CHUNK], self.pending[WRITE_CHUNK:]
        if self.pending:
            self._write_soon.set()
        return batch

    def write(self, batch: list[Transition]) -> None:
        if not batch:
            return
        by_id = {t.id: t for t in self.targets}
        with self.ctx.store.session() as session:
            rows = {r.check_id: r for r in session.scalars(
                select(CheckState).where(CheckState.check_id.in_({t.check_id for t in batch})))}
            for change in batch:
                target = by_id.get(change.check_id)
                events.record(
                    session,
                    kind="check.state_changed",
                    actor=ACTOR,
                    target=change.check_id,
                    service=change.component,
                    outcome=change.current.value,
                    details={
                        "check": target.name if target else change.check_id,
                        "type": target.type if target else None,
                        "address": target.address if target else None,
                        "from": change.previous.value if change.previous else None,
                        "to": change.current.value,
                        "reason": change.reason,
                        "environment": self.ctx.env,
                    },
                    ts=change.at,
                )
                row = rows.get(change.check_id)
                if row is None:
                    row = CheckState(check_id=change.check_id, component=change.component)
                    session.add(row)
                    rows[change.check_id] = row
                row.state = change.current.value
                row.reason = change.reason
                row.since = change.at
        self.ctx.metrics.state_changes.inc(len(batch))

    def _load_known(self) -> dict[str, KnownState]:
        with self.ctx.store.session() as session:
            return {
                row.check_id: KnownState(State(row.state), row.since)
                for row in session.scalars(select(CheckState))
            }


def build(ctx: WorkerContext) -> HealthWorker:
    return HealthWorker(ctx)
