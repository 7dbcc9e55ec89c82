"""`serve`'s backup worker: runs the inventory's backup and verification schedules, and keeps
each policy's state for the alert rules.

Every 15 seconds it reads where each policy stands (`status.py`), publishes the series of what
falls short (`series.py`, read by the alerts worker), and starts what is due, one at a time on a
thread of its own (an engine runs for minutes). A scheduled slot is claimed before it is run
(`backup-slot:<policy>:<kind>:<slot>`), so a second replica never takes the same backup twice and
a `serve` killed mid-backup is followed by one that fails the cut-off backup (its run claim
lapsed) and takes the next slot."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsplane.workers import LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.backup.policy import AppliedPolicy
    from opsplane.backup.tables import BackupRow

log = logging.getLogger(__name__)

POLL = 15.0
# A claim on a slot outlives any backup that could be taking it: the slot is done once claimed.
SLOT_LEASE = 24 * 3600.0
# When several kinds fall due together, the largest one is taken: a full backup covers the rest.
_ORDER = ("full", "diff", "incr")


@dataclass(frozen=True)
class Due:
    """One piece of scheduled work: a backup of `kind`, or a verification (`kind` "verify")."""

    policy: str
    kind: str
    slot: datetime

    @property
    def key(self) -> str:
        return f"backup-slot:{self.policy}:{self.kind}:{self.slot.isoformat()}"


class BackupWorker(LoopWorker):
    """Backups and verifications on their schedules. Every replica may run it: each slot is
    claimed before its work starts."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("backup", ctx, stuck_after=24 * 3600.0)  # a backup may run for hours
        self.samples: list[Any] = []  # the series of what falls short, as the last round found it
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        ctx.backups = self

    async def run(self) -> None:
        from opsplane.backup.flows import BackupRuns

        runs = BackupRuns(self.ctx.store, clock=self.ctx.clock, holder=self.holder, actor="opsplane")
        try:
            await self.every(POLL, lambda: self._round(runs), doing="running backup schedules")
        finally:
            runs.close()

    async def _round(self, runs: Any) -> datetime | None:
        due = await self.ctx.in_store(self._read)
        for work in due:
            claimed = await self.ctx.in_store(self._claim, work)
            if claimed:
                await asyncio.to_thread(self._do, runs, work)
                self.samples = (await self.ctx.in_store(self._read_samples))
        return None

    # --- on the store's threads ---------------------------------------------------------

    def _read(self) -> list[Due]:
        """Publish the series of what falls short; the work due now, in the inventory's order."""
        from opsplane.backup import service
        from opsplane.backup.policy import applied
        from opsplane.backup.series import backup_samples
        from opsplane.backup.status import statuses

        inv, now = self.ctx.inventory, self.ctx.clock.now()
        tz = inv.backup.time_zone
        with self.ctx.store.session() as session:
            service.sweep_cut_off(session, now=now)
            found = statuses(session, inv, now=now)
            self.samples = backup_samples(found, env=self.ctx.env)
            due: list[Due] = []
            for policy in applied(inv):
                rows = service.get_all(session, policy=policy.name, limit=200)
                verified = service.restores(session, policy=policy.name, purpose="verify", limit=1)
                due += due_work(policy, rows, verified[0].started_at if verified else None, tz=tz, now=now)
        return due

    def _read_samples(self) -> list[Any]:
        from opsplane.backup.series import backup_samples
        from opsplane.backup.status import statuses

        with self.ctx.store.session() as session:
            return backup_samples(statuses(session, self.ctx.inventory, now=self.ctx.clock.now()),
                                  env=self.ctx.env)

    def _claim(self, work: Due) -> bool:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, work.key, holder=self.holder, now=self.ctx.clock.now(),
                               lease=SLOT_LEASE) is not None

    # --- on a thread of its own ---------------------------------------------------------

    def _do(self, runs: Any, work: Due) -> None:
        from opsplane.backup.engines import open_engine
        from opsplane.backup.flows import verify
        from opsplane.backup.policy import apply, scratch_dir

        inv = self.ctx.inventory
        base = self.ctx.inventory_dir
        try:
            engine = open_engine(inv, apply(inv, work.policy), environ=dict(self.ctx.environ or os.environ),
                                 base_dir=base)
            if work.kind == "verify":
                scratch = scratch_dir(inv)
                verify(self.ctx.store, engine, scratch=scratch if scratch.is_absolute() else base / scratch,
                       clock=self.ctx.clock, actor="opsplane")
            else:
                result = runs.run(engine, kind=work.kind, trigger="schedule")
                if result.state == "failed":
                    log.warning("scheduled %s backup of %s failed: %s", work.kind, work.policy, result.error)
        except Exception as exc:  # a missing key, an engine not installed: recorded, tried next slot
            self.failed(exc)
            log.exception("scheduled %s of %s could not run", work.kind, work.policy)


def due_work(policy: AppliedPolicy, rows: Sequence[BackupRow], last_verify: datetime | None, *, tz: str,
             now: datetime) -> list[Due]:
    """What of `policy` is due at `now`, given its backups (`rows`, newest first) and when it was
    last verified: the largest kind of backup whose slot has passed without one (a full backup
    stands for the day's differential and the hour's incremental), and the verification whose
    slot passed since the last one (the first: since the first good backup)."""
    from opsplane.backup.schedule import parse_cron
    from opsplane.backup.tables import GOOD

    due: list[Due] = []
    for kind in sorted(policy.kinds, key=_ORDER.index):
        covering = _ORDER[:_ORDER.index(kind) + 1]
        started = max((row.started_at for row in rows if _kind_of(row.kind) in covering), default=None)
        slot = _slot(parse_cron(policy.kinds[kind]), tz, started, now)
        if slot is not None:
            due.append(Due(policy.name, kind, slot))
            break
    since = last_verify or min((row.finished_at for row in rows if row.state in GOOD and row.finished_at),
                               default=None)
    slot = _slot(parse_cron(policy.verify), tz, since, now) if since else None
    if slot is not None:
        due.append(Due(policy.name, "verify", slot))
    return due


def _kind_of(recorded: str) -> str:
    """The schedule's kind a catalogued backup counts as: the restic-kept engines record what they
    took ("snapshot", "dump", "files"), each a whole copy, so a full one."""
    return recorded if recorded in _ORDER else "full"


def _slot(schedule: Any, tz: str, last_started: datetime | None, now: datetime) -> datetime | None:
    """The slot that is due now (the latest fire time not yet started), or None."""
    from opsplane.backup.schedule import due

    if not due(schedule, tz, last_started, now):
        return None
    slot: datetime = schedule.previous_at_or_before(now, tz)
    return slot


def build(ctx: WorkerContext) -> BackupWorker | None:
    """Only when the inventory has backup policies."""
    return BackupWorker(ctx) if ctx.inventory.backup.policies else None
