"""Backups as they happen: take one under a claim, check the repositories after it, restore one
into a scratch server to prove it, and record each step in the catalog and the event log.

Every function here takes the store, a clock and an `Engine` (engines.py), so the same flow runs
from `opsplane backup run`, from `serve`'s schedule and from a test with an engine of its own."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from opsplane.backup import service
from opsplane.backup.engines import CopyRef, Engine
from opsplane.backup.tables import GOOD, BackupCopyRow, BackupRow
from opsplane.clock import Clock
from opsplane.drivers.backup.base import BackupEngineError, Progress, no_progress
from opsplane.errors import OpsplaneError, UsageError
from opsplane.store import Store, claims

log = logging.getLogger(__name__)

class RepositoryUnreachable(UsageError):
    """A repository of the policy cannot be reached or made ready; no backup was begun."""


# A backup's claim lasts this long past its last renewal: a holder that died is noticed within it.
LEASE = 30.0
RENEW_WITHIN = 20.0


@dataclass(frozen=True)
class RunResult:
    """What one backup run came to."""

    backup_id: int
    state: str  # complete or failed
    kind: str
    seconds: float
    size_bytes: int | None = None
    copies: tuple[str, ...] = ()
    error: str | None = None
    repository_problems: Mapping[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "state": self.state, "kind": self.kind,
                "seconds": round(self.seconds, 1), "size_bytes": self.size_bytes,
                "copies": list(self.copies), "error": self.error,
                "repository_problems": dict(self.repository_problems)}


class BackupRuns:
    """Takes backups one at a time, each under its claim, renewed while it runs."""

    def __init__(self, store: Store, *, clock: Clock, holder: str, actor: str) -> None:
        self.store = store
        self.clock = clock
        self.holder = holder
        self.actor = actor
        self._keeper: claims.LeaseKeeper[claims.Claim] = claims.LeaseKeeper(
            self._renew, now=clock.now, renew_within=RENEW_WITHIN, what="backup",
            thread_name="backup-claims")

    def close(self) -> None:
        self._keeper.close()

    def _renew(self, claim: claims.Claim, now: datetime) -> bool:
        with self.store.session() as session:
            return claims.renew(session, claim, now)

    def run(self, engine: Engine, *, kind: str, trigger: str, progress: Progress = no_progress,
            check_after: bool = True, refuse_unreachable: bool = False) -> RunResult:
        """Take one backup of `kind` with `engine`; the catalog lists it as good only once every
        copy is written. With `check_after`, the engine's own check of each repository follows
        (pgBackRest verify, restic check): it finds what a backup that succeeded cannot tell.

        With `refuse_unreachable` (a person asking at a terminal), repositories that cannot be
        made ready raise RepositoryUnreachable before anything is recorded; otherwise (a
        schedule) that is a failed backup, which pages."""
        policy = engine.policy
        if refuse_unreachable:
            try:
                engine.prepare()
            except BackupEngineError as exc:
                raise RepositoryUnreachable(f"{policy.name}: {exc}; nothing was recorded") from None
        now = self.clock.now()
        with self.store.session() as session:
            service.sweep_cut_off(session, now=now)
            kind = _kind_possible(session, policy.name, kind)
            row = service.begin(session, policy=policy.name, component=policy.component,
                                engine=policy.engine, kind=kind, parent_id=None, trigger=trigger,
                                actor=self.actor, now=now)
            claim = claims.take(session, service.RUN_CLAIM.format(id=row.id), holder=self.holder, now=now,
                                lease=LEASE)
            assert claim is not None  # a new key: nobody else can hold it
            backup_id = row.id
        started = self.clock.now()
        try:
            with self._keeper.holding(claim):
                engine.prepare()
                outcome = engine.backup(kind, progress)
        except (BackupEngineError, OpsplaneError) as exc:
            return self._failed(backup_id, claim, kind, str(exc), started)
        except Exception as exc:
            log.exception("backup %s of %s failed unexpectedly", backup_id, policy.name)
            return self._failed(backup_id, claim, kind, f"{type(exc).__name__}: {exc}", started)
        with self.store.session() as session:
            row = service.get(session, backup_id)
            row.parent_id = _parent_id(session, outcome.facts.get("prior"))
            service.complete(session, row, outcome, actor=self.actor, now=self.clock.now())
            claims.finish(session, claim, self.clock.now())
        problems: dict[str, list[str]] = {}
        if check_after:
            problems = self.check_repositories(engine, progress)
        return RunResult(backup_id=backup_id, state="complete", kind=outcome.kind,
                         seconds=(self.clock.now() - started).total_seconds(),
                         size_bytes=outcome.size_bytes,
                         copies=tuple(copy.repository for copy in outcome.copies),
                         repository_problems=problems)

    def check_repositories(self, engine: Engine, progress: Progress = no_progress) -> dict[str, list[str]]:
        """The engine's own check of every repository, and whether it still holds each copy the
        catalog lists there; each an event; the problems by repository."""
        found: dict[str, list[str]] = {}
        for repository in engine.repositories:
            progress(f"check {repository.name}", None)
            try:
                problems = engine.check(repository.name)
                problems += reconcile(self.store, engine, repository.name, clock=self.clock, actor=self.actor)
            except BackupEngineError as exc:
                problems = [str(exc)]
            found[repository.name] = problems
            with self.store.session() as session:
                service.record_repository_check(session, policy=engine.policy.name,
                                                component=engine.policy.component,
                                                repository=repository.name, problems=problems,
                                                actor=self.actor, now=self.clock.now())
        return found

    def _failed(self, backup_id: int, claim: claims.Claim, kind: str, error: str,
                started: datetime) -> RunResult:
        with self.store.session() as session:
            service.fail(session, service.get(session, backup_id), error=error, actor=self.actor,
                         now=self.clock.now())
            claims.finish(session, claim, self.clock.now())
        return RunResult(backup_id=backup_id, state="failed", kind=kind,
                         seconds=(self.clock.now() - started).total_seconds(), error=error)


def reconcile(store: Store, engine: Engine, repository: str, *, clock: Clock, actor: str) -> list[str]:
    """Mark every copy the catalog lists in `repository` that the repository no longer holds as
    missing (an event each, once); a sentence per copy found missing now."""
    held = engine.held(repository)
    missing: list[str] = []
    with store.session() as session:
        listed = session.scalars(select(BackupCopyRow)
                                 .join(BackupRow, BackupRow.id == BackupCopyRow.backup_id)
                                 .where(BackupRow.policy == engine.policy.name,
                                        BackupCopyRow.repository == repository,
                                        BackupCopyRow.state == "present")).all()
        for copy in listed:
            if copy.label not in held:
                service.mark_copy_missing(session, copy, actor=actor, now=clock.now())
                missing.append(f"the copy of backup {copy.backup_id} ({copy.label}) is missing")
    return missing


def _kind_possible(session: Any, policy: str, kind: str) -> str:
    """A differential or incremental backup builds on a full one: without a good full backup,
    a full one is taken instead (as pgBackRest itself does)."""
    if kind == "full":
        return kind
    has_full = session.scalar(select(BackupRow.id).where(
        BackupRow.policy == policy, BackupRow.kind == "full", BackupRow.state.in_(GOOD)).limit(1))
    return kind if has_full is not None else "full"


def _parent_id(session: Any, prior_label: Any) -> int | None:
    """The catalogued backup an incremental or differential one builds on, by the engine's label."""
    if not prior_label:
        return None
    found: int | None = session.scalar(select(BackupCopyRow.backup_id)
                                       .where(BackupCopyRow.label == str(prior_label)).limit(1))
    return found


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What restoring one backup and checking it found."""

    backup_id: int
    repository: str
    ok: bool
    problems: tuple[str, ...]
    seconds: float
    report: Mapping[str, Any]


def compare_contents(recorded: Mapping[str, Any], restored: Mapping[str, Any]) -> list[str]:
    """What differs between the contents recorded when a backup ended and those restored:
    each missing, extra or differently counted table (or database of keys), in words."""
    problems = []
    for name in sorted(set(recorded) | set(restored)):
        if name not in restored:
            problems.append(f"{name}: recorded {recorded[name]}, missing after the restore")
        elif name not in recorded:
            problems.append(f"{name}: not recorded, {restored[name]} after the restore")
        elif recorded[name] != restored[name]:
            problems.append(f"{name}: recorded {recorded[name]}, restored {restored[name]}")
    return problems


def verify(store: Store, engine: Engine, *, scratch: Path, clock: Clock, actor: str,
           backup_id: int | None = None, repository: str | None = None,
           progress: Progress = no_progress) -> Verification:
    """Restore a good backup (the newest, or `backup_id`) from `repository` (the first holding
    it) into a scratch server, check it starts and is sound, and compare its contents with what
    was recorded when it ended. The backup becomes verified or verify-failed; the restore and
    its report are kept."""
    policy = engine.policy
    with store.session() as session:
        copy = _copy_to_verify(session, policy.name, backup_id, repository)
        restore = service.begin_restore(session, purpose="verify", policy=policy.name,
                                        backup_id=copy.backup_id, repository=copy.repository,
                                        target=f"scratch server under {scratch}",
                                        recovery_target=f"backup {copy.backup_id}", actor=actor,
                                        now=clock.now())
        restore_id = restore.id
    started = clock.now()
    problems: list[str] = []
    report: dict[str, Any] = {"repository": copy.repository, "label": copy.label}
    try:
        progress("restore", None)
        with engine.restore_scratch(copy, scratch) as restored:
            progress("check", None)
            report["restored_at"] = restored.address
            for check, found in restored.checks.items():
                problems += [f"{check}: {problem}" for problem in found]
            if "contents" in copy.facts:  # what the engine recorded to compare (PostgreSQL's rows)
                problems += compare_contents(copy.facts["contents"], restored.contents)
            report["contents"] = dict(restored.contents)
    except BackupEngineError as exc:
        problems.append(str(exc))
    seconds = (clock.now() - started).total_seconds()
    report.update(seconds=round(seconds, 1), problems=problems)
    ok = not problems
    with store.session() as session:
        service.record_verification(session, service.get(session, copy.backup_id), ok=ok,
                                    report={"repository": copy.repository, "seconds": round(seconds, 1),
                                            **({"problem": problems[0], "problems": len(problems)}
                                               if problems else {})},
                                    actor=actor, now=clock.now())
        service.finish_restore(session, service.get_restore(session, restore_id), ok=ok, report=report,
                               error=problems[0] if problems else None, actor=actor, now=clock.now())
    return Verification(copy.backup_id, copy.repository, ok, tuple(problems), seconds, report)


def _copy_to_verify(session: Any, policy: str, backup_id: int | None, repository: str | None) -> CopyRef:
    if backup_id is not None:
        rows = [service.get(session, backup_id)]
        if rows[0].policy != policy:
            raise service.NoSuchBackup(f"backup {backup_id} is of {rows[0].policy}, not {policy}")
    else:
        rows = list(service.good(session, policy=policy, limit=1))
        if not rows:
            raise service.NoSuchBackup(f"{policy} has no good backup to verify; take one with "
                                       f"`opsplane backup run {policy}`")
    row = rows[0]
    held = service.copies(session, [row.id])[row.id]
    chosen = [copy for copy in held if repository is None or copy.repository == repository]
    if not chosen:
        where = f" in {repository}" if repository else ""
        raise service.NoSuchBackup(f"backup {row.id} of {policy} has no copy{where}")
    return CopyRef(row.id, chosen[0].repository, chosen[0].label, row.facts, row.checksum)

