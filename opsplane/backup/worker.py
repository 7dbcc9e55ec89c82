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
ARCHIVE_EVERY = 60.0  # how often continuous archiving is looked at (pg_stat_archiver, pgBackRest info)
# A claim on a slot outlives any backup that could be taking it: the slot is done once claimed.
SLOT_LEASE = 24 * 3600.0
# When several kinds fall due together, the largest one is taken: a full backup covers the rest.
_ORDER = ("full", "diff", "incr")


@dataclass(frozen=True)
class Due:
    """One piece of work: a backup of `kind`, a verification (`kind` "verify") or a drill, in its
    scheduled slot or asked for through the API (`requested`: the request's claim)."""

    policy: str
    kind: str
    slot: datetime
    requested: str | None = None

    @property
    def key(self) -> str:
        return self.requested or f"backup-slot:{self.policy}:{self.kind}:{self.slot.isoformat()}"


class BackupWorker(LoopWorker):
    """Backups and verifications on their schedules. Every replica may run it: each slot is
    claimed before its work starts."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("backup", ctx, stuck_after=24 * 3600.0)  # a backup may run for hours
        self.samples: list[Any] = []  # the series of what falls short, as the last round found it
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._complete_at: dict[str, dict[str, datetime]] = {}  # policy -> repository -> last complete
        # policy -> repository -> the moment a restore reaches through the WAL archive
        self.archived: dict[str, dict[str, datetime]] = {}
        self._archive_looked = 0.0
        ctx.backups = self

    async def run(self) -> None:
        from opsplane.backup.flows import BackupRuns

        runs = BackupRuns(self.ctx.store, clock=self.ctx.clock, holder=self.holder, actor="opsplane")
        try:
            await self.every(POLL, lambda: self._round(runs), doing="running backup schedules")
        finally:
            runs.close()

    async def _round(self, runs: Any) -> datetime | None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._archive_looked >= ARCHIVE_EVERY:
            self._archive_looked = loop.time()
            breaks = await asyncio.to_thread(self._look_at_archives)
            await self.ctx.in_store(self._record_archives, breaks)
        due = await self.ctx.in_store(self._read)
        for work in due:
            claim = await self.ctx.in_store(self._claim, work)
            if claim is not None:
                await asyncio.to_thread(self._do, runs, work)
                if work.requested:
                    await self.ctx.in_store(self._finish, claim)
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
            found = statuses(session, inv, now=now, archived=self.archived)
            self.samples = backup_samples(found, env=self.ctx.env)
            asked = service.requested(session, now=now)
            due = [Due(policy, what, now, requested=key) for key, policy, what in asked
                   if policy in inv.backup.policies]
            for policy in applied(inv):
                rows = service.get_all(session, policy=policy.name, limit=200)
                verified = service.restores(session, policy=policy.name, purpose="verify", limit=1)
                drilled = service.restores(session, policy=policy.name, purpose="drill", limit=1)
                due += due_work(policy, rows, verified[0].started_at if verified else None, tz=tz, now=now,
                                last_drill=drilled[0].started_at if drilled else None)
        return due

    def _read_samples(self) -> list[Any]:
        from opsplane.backup.series import backup_samples
        from opsplane.backup.status import statuses

        with self.ctx.store.session() as session:
            return backup_samples(statuses(session, self.ctx.inventory, now=self.ctx.clock.now(),
                                           archived=self.archived), env=self.ctx.env)

    def _claim(self, work: Due) -> Any:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, work.key, holder=self.holder, now=self.ctx.clock.now(),
                               lease=SLOT_LEASE)

    def _finish(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.finish(session, claim, self.ctx.clock.now())

    def _record_archives(self, breaks: dict[str, dict[str, tuple[datetime, str]]]) -> None:
        """An event for each repository whose archive broke or works again since the last look."""
        from opsplane.backup import service
        from opsplane.backup.policy import apply

        now = self.ctx.clock.now()
        with self.ctx.store.session() as session:
            for name, found in breaks.items():
                policy = apply(self.ctx.inventory, name)
                known = service.archive_breaks(session, policy=name)
                for repository in policy.repositories:
                    if repository in found and repository not in known:
                        since, reason = found[repository]
                        service.record_archive(session, policy=name, component=policy.component,
                                               repository=repository, broken_since=since, reason=reason,
                                               actor="opsplane", now=now)
                    elif repository in known and repository not in found:
                        service.record_archive(session, policy=name, component=policy.component,
                                               repository=repository, broken_since=None,
                                               reason="every archived segment is in the repository again",
                                               actor="opsplane", now=now)

    # --- on a thread of its own ---------------------------------------------------------

    def _look_at_archives(self) -> dict[str, dict[str, tuple[datetime, str]]]:
        """Each archiving policy's broken repositories (policies that could not be looked at are
        left out: their state stays as it was)."""
        from opsplane.backup.archive import archived_until, judge_archive
        from opsplane.backup.factory import open_engine
        from opsplane.backup.policy import applied

        inv = self.ctx.inventory
        found: dict[str, dict[str, tuple[datetime, str]]] = {}
        for policy in applied(inv):
            if not policy.physical:
                continue
            try:
                engine = open_engine(inv, policy, environ=dict(self.ctx.environ or os.environ),
                                     base_dir=self.ctx.inventory_dir)
                state = engine.archive_state()
            except Exception as exc:  # the database down: its checks say so; the archive is unknown
                log.warning("could not look at the WAL archive of %s: %s", policy.name, exc)
                continue
            if state is not None:
                seen = self._complete_at.setdefault(policy.name, {})
                found[policy.name] = judge_archive(state, complete_at=seen, now=self.ctx.clock.now())
                self.archived[policy.name] = archived_until(state)
        return found

    def _do(self, runs: Any, work: Due) -> None:
        from opsplane.backup.factory import open_engine
        from opsplane.backup.flows import verify
        from opsplane.backup.policy import apply, scratch_dir

        inv = self.ctx.inventory
        base = self.ctx.inventory_dir
        try:
            engine = open_engine(inv, apply(inv, work.policy), environ=dict(self.ctx.environ or os.environ),
                                 base_dir=base)
            scratch = scratch_dir(inv)
            scratch = scratch if scratch.is_absolute() else base / scratch
            if work.kind == "verify":
                verify(self.ctx.store, engine, scratch=scratch, clock=self.ctx.clock, actor="opsplane")
            elif work.kind == "drill":
                from opsplane.backup.drill import run_drill

                run_drill(self.ctx.store, engine, scratch=scratch, clock=self.ctx.clock, actor="opsplane")
            else:
                result = runs.run(engine, kind=work.kind, trigger="schedule")
                if result.state == "failed":
                    log.warning("scheduled %s backup of %s failed: %s", work.kind, work.policy, result.error)
        except Exception as exc:  # a missing key, an engine not installed: recorded, tried next slot
            self.failed(exc)
            log.exception("scheduled %s of %s could not run", work.kind, work.policy)


def due_work(policy: AppliedPolicy, rows: Sequence[BackupRow], last_verify: datetime | None, *, tz: str,
             now: datetime, last_drill: datetime | None = None) -> list[Due]:
    """What of `policy` is due at `now`, given its backups (`rows`, newest first) and when it was
    last verified and drilled: the largest kind of backup whose slot has passed without one (a
    full backup stands for the day's differential and the hour's incremental), and the
    verification and drill whose slots passed since the last ones (the first: since the first
    good backup)."""
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
    first_good = min((row.finished_at for row in rows if row.state in GOOD and row.finished_at), default=None)
    for kind, cron, last in (("verify", policy.verify, last_verify), ("drill", policy.drill, last_drill)):
        since = last or first_good
        slot = _slot(parse_cron(cron), tz, since, now) if since else None
        if slot is not None:
            due.append(Due(policy.name, kind, slot))
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
