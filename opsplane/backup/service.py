"""The backup catalog in the store: beginning, finishing and failing backups, their copies, their
verification, the restores and drills, and reading them back. Every write records its
`backup.*` or `restore.*` event in the same transaction; only this module writes these rows.

A backup in flight holds the claim `backup-run:<id>` (store/claims.py), renewed while it runs.
When its holder dies the lease runs out; `sweep_cut_off` then fails the backup, so one cut off
half-way is never taken for good."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.backup.tables import GOOD, BackupCopyRow, BackupRow, RestoreRow
from opsplane.drivers.backup.base import BackupOutcome
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.store.claims import WorkClaim

RUN_CLAIM = "backup-run:{id}"
RESTORE_CLAIM = "restore-run:{id}"


class NoSuchBackup(UsageError):
    """No backup has that id."""


def begin(session: Session, *, policy: str, component: str | None, engine: str, kind: str,
          parent_id: int | None, trigger: str, actor: str, now: datetime) -> BackupRow:
    """Record a backup that starts now (state running)."""
    row = BackupRow(policy=policy, component=component, engine=engine, kind=kind, state="running",
                    parent_id=parent_id, started_at=now, facts={}, trigger=trigger, requested_by=actor)
    session.add(row)
    session.flush()
    _event(session, row, "backup.started", actor, now, "started",
           {"engine": engine, "kind": kind, "trigger": trigger,
            **({"parent": parent_id} if parent_id is not None else {})})
    return row


def complete(session: Session, row: BackupRow, outcome: BackupOutcome, *, actor: str,
             now: datetime) -> BackupRow:
    """The backup finished with every copy written: it is good from now on."""
    row.state = "complete"
    row.kind = outcome.kind
    row.finished_at = outcome.finished
    row.size_bytes = outcome.size_bytes
    row.checksum = outcome.checksum
    row.facts = dict(outcome.facts)
    for copy in outcome.copies:
        session.add(BackupCopyRow(backup_id=row.id, repository=copy.repository, label=copy.label,
                                  stored_bytes=copy.stored_bytes, state="present", created_at=now))
    duration = (outcome.finished - outcome.started).total_seconds()
    _event(session, row, "backup.completed", actor, now, "ok",
           {"kind": outcome.kind, "size_bytes": outcome.size_bytes, "seconds": round(duration, 1),
            "copies": [copy.repository for copy in outcome.copies]})
    return row


def fail(session: Session, row: BackupRow, *, error: str, actor: str, now: datetime) -> BackupRow:
    """The backup did not finish: never good. `error` says what went wrong, for a person."""
    row.state = "failed"
    row.finished_at = now
    row.error = error
    _event(session, row, "backup.failed", actor, now, "failed", {"kind": row.kind, "error": error})
    return row


def sweep_cut_off(session: Session, *, now: datetime, actor: str = "opsplane") -> list[BackupRow]:
    """Fail every running backup whose holder is gone (its claim lapsed or was never taken)."""
    running = session.scalars(select(BackupRow).where(BackupRow.state == "running")).all()
    swept = []
    for row in running:
        if holder_alive(session, row, now=now):
            continue
        swept.append(fail(session, row, actor=actor, now=now,
                          error="cut off: what ran it stopped before the backup finished"))
    return swept


def holder_alive(session: Session, row: BackupRow, *, now: datetime) -> bool:
    """Whether the backup `row` is still being taken by someone holding its claim."""
    claim = session.get(WorkClaim, RUN_CLAIM.format(id=row.id))
    return claim is not None and claim.done_at is None and claim.expires_at > now


REQUEST = "backup-request:"


def request(session: Session, *, policy: str, component: str | None, what: str, actor: str,
            now: datetime) -> str:
    """Ask `serve`'s backup worker for `what` (a backup of a kind, "verify" or "drill") of `policy`
    now: a claim anyone may take at once, which the worker takes, does and finishes. The key."""
    key = f"{REQUEST}{policy}:{what}:{now.isoformat()}"
    session.add(WorkClaim(key=key, holder=f"requested by {actor}", token=0, claimed_at=now, expires_at=now))
    events.record(session, kind="backup.requested", actor=actor, target=f"{what} of {policy}",
                  outcome="accepted", service=component, details={"policy": policy, "what": what}, ts=now)
    return key


def requested(session: Session, *, now: datetime) -> list[tuple[str, str, str]]:
    """The requests no one is doing or has done: (key, policy, what), oldest first."""
    rows = session.scalars(select(WorkClaim).where(WorkClaim.key.startswith(REQUEST),
                                                   WorkClaim.done_at.is_(None), WorkClaim.expires_at <= now)
                           .order_by(WorkClaim.claimed_at)).all()
    found = []
    for row in rows:
        policy, what, _ = row.key[len(REQUEST):].split(":", 2)
        found.append((row.key, policy, what))
    return found


def get(session: Session, backup_id: int) -> BackupRow:
    row = session.get(BackupRow, backup_id)
    if row is None:
        raise NoSuchBackup(f"no backup {backup_id}; `opsplane backup list` shows them")
    return row


def get_all(session: Session, *, policy: str | None = None, states: Sequence[str] | None = None,
            limit: int = 100) -> Sequence[BackupRow]:
    """Backups newest first."""
    query = select(BackupRow)
    if policy is not None:
        query = query.where(BackupRow.policy == policy)
    if states is not None:
        query = query.where(BackupRow.state.in_(states))
    newest_first = query.order_by(BackupRow.started_at.desc(), BackupRow.id.desc())
    return session.scalars(newest_first.limit(limit)).all()


def good(session: Session, *, policy: str, limit: int = 1000) -> Sequence[BackupRow]:
    """The policy's good backups (complete or verified), newest first."""
    return get_all(session, policy=policy, states=GOOD, limit=limit)


def copies(session: Session, backup_ids: Sequence[int]) -> dict[int, list[BackupCopyRow]]:
    """The copies of each backup that are still held, by backup id."""
    found: dict[int, list[BackupCopyRow]] = {backup_id: [] for backup_id in backup_ids}
    if not backup_ids:
        return found
    rows = session.scalars(select(BackupCopyRow).where(BackupCopyRow.backup_id.in_(backup_ids),
                                                       BackupCopyRow.state == "present")
                           .order_by(BackupCopyRow.id)).all()
    for row in rows:
        found[row.backup_id].append(row)
    return found


def newest_good_by_repository(session: Session, *, policy: str) -> dict[str, BackupRow]:
    """For each repository, the newest good backup of the policy it holds a copy of."""
    rows = good(session, policy=policy)
    held = copies(session, [row.id for row in rows])
    newest: dict[str, BackupRow] = {}
    for row in rows:  # newest first
        for copy in held[row.id]:
            newest.setdefault(copy.repository, row)
    return newest


def mark_copy_missing(session: Session, copy: BackupCopyRow, *, actor: str, now: datetime) -> None:
    """A repository no longer holds a copy the catalog lists: say so, once."""
    if copy.state == "missing":
        return
    copy.state = "missing"
    copy.checked_at = now
    backup = session.get(BackupRow, copy.backup_id)
    if backup is not None:
        _event(session, backup, "backup.copy_missing", actor, now, "missing",
               {"repository": copy.repository, "label": copy.label})


def record_verification(session: Session, row: BackupRow, *, ok: bool, report: dict[str, Any],
                        actor: str, now: datetime) -> BackupRow:
    """The outcome of restoring and checking backup `row`: verified, or verify-failed with what
    failed."""
    row.state = "verified" if ok else "verify-failed"
    row.verified_at = now
    _event(session, row, "backup.verified" if ok else "backup.verify_failed", actor, now,
           "ok" if ok else "failed", report)
    return row


def expire(session: Session, row: BackupRow, *, reason: str, actor: str, now: datetime) -> BackupRow:
    """The backup was removed from every repository by retention."""
    row.state = "expired"
    for copy in session.scalars(select(BackupCopyRow).where(BackupCopyRow.backup_id == row.id)):
        copy.state = "expired"
        copy.checked_at = now
    _event(session, row, "backup.pruned", actor, now, "ok", {"reason": reason})
    return row


def record_repository_check(session: Session, *, policy: str, component: str | None, repository: str,
                            problems: list[str], actor: str, now: datetime) -> None:
    """The engine's own check of a repository (pgBackRest verify, restic check): an event, with the
    problems it found."""
    events.record(session, kind="backup.repository_checked", actor=actor,
                  target=f"repository {repository} of {policy}", outcome="failed" if problems else "ok",
                  service=component,
                  details={"policy": policy, "repository": repository, "problems": len(problems),
                           **({"problem": problems[0]} if problems else {})}, ts=now)


def last_repository_checks(session: Session, *, policy: str) -> dict[str, Any]:
    """The newest repository check event of each of the policy's repositories."""
    rows = session.scalars(select(Event).where(Event.kind == "backup.repository_checked")
                           .order_by(Event.id.desc()).limit(200)).all()
    newest: dict[str, Any] = {}
    for row in rows:
        if row.details.get("policy") == policy:
            newest.setdefault(str(row.details.get("repository")), row)
    return newest


def as_dict(row: BackupRow, held: Sequence[BackupCopyRow]) -> dict[str, Any]:
    """A backup and its copies as the CLI's --json and the API give them."""
    return {"id": row.id, "policy": row.policy, "component": row.component, "engine": row.engine,
            "kind": row.kind, "state": row.state, "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "size_bytes": row.size_bytes, "checksum": row.checksum, "parent": row.parent_id,
            "trigger": row.trigger, "requested_by": row.requested_by, "error": row.error,
            "verified_at": row.verified_at.isoformat() if row.verified_at else None,
            "facts": row.facts,
            "copies": [{"repository": c.repository, "label": c.label, "stored_bytes": c.stored_bytes}
                       for c in held]}


def restore_as_dict(row: RestoreRow) -> dict[str, Any]:
    """A restore, verification or drill with its report."""
    return {"id": row.id, "purpose": row.purpose, "policy": row.policy, "backup": row.backup_id,
            "repository": row.repository, "target": row.target, "recovery_target": row.recovery_target,
            "state": row.state, "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "error": row.error, "requested_by": row.requested_by, "report": row.report}


def record_archive(session: Session, *, policy: str, component: str | None, repository: str,
                   broken_since: datetime | None, reason: str, actor: str, now: datetime) -> None:
    """Continuous archiving into `repository` broke (`broken_since`: no restore to a later moment
    is possible) or works again (None): an event either way, written only on a change."""
    broken = broken_since is not None
    events.record(session, kind="backup.archive_broken" if broken else "backup.archive_restored",
                  actor=actor, target=f"WAL archive of {policy} in {repository}",
                  outcome="failed" if broken else "ok", service=component,
                  details={"policy": policy, "repository": repository, "reason": reason,
                           **({"since": broken_since.isoformat()} if broken_since else {})}, ts=now)


def archive_breaks(session: Session, *, policy: str) -> dict[str, tuple[datetime, str]]:
    """The repositories of `policy` whose WAL archive is broken now: since when, and why."""
    rows = session.scalars(select(Event).where(Event.kind.in_(("backup.archive_broken",
                                                               "backup.archive_restored")))
                           .order_by(Event.id.desc()).limit(500)).all()
    latest: dict[str, Event] = {}
    for row in rows:
        if row.details.get("policy") == policy:
            latest.setdefault(str(row.details.get("repository")), row)
    return {repo: (datetime.fromisoformat(row.details["since"]), str(row.details.get("reason", "")))
            for repo, row in latest.items() if row.kind == "backup.archive_broken"}


# --- restores, verifications and drills ---------------------------------------------------


def begin_restore(session: Session, *, purpose: str, policy: str, backup_id: int | None,
                  repository: str | None, target: str, recovery_target: str | None, actor: str,
                  now: datetime) -> RestoreRow:
    """Record a restore (or verification, or drill) that starts now."""
    row = RestoreRow(purpose=purpose, policy=policy, backup_id=backup_id, repository=repository,
                     target=target, recovery_target=recovery_target, state="running", started_at=now,
                     report={}, requested_by=actor)
    session.add(row)
    session.flush()
    _restore_event(session, row, "restore.started", actor, now, "started",
                   {"target": target, **({"to": recovery_target} if recovery_target else {})})
    return row


def finish_restore(session: Session, row: RestoreRow, *, ok: bool, report: dict[str, Any],
                   error: str | None, actor: str, now: datetime) -> RestoreRow:
    """The restore ended: its report (what it measured and checked) kept as evidence."""
    row.state = "succeeded" if ok else "failed"
    row.finished_at = now
    row.report = report
    row.error = error
    # the figures go into the event; what is long (lists, the Markdown report) stays in the row
    details = {key: value for key, value in report.items()
               if not isinstance(value, dict | list) and key != "markdown"}
    _restore_event(session, row, f"restore.{'succeeded' if ok else 'failed'}", actor, now,
                   "ok" if ok else "failed", {**details, **({"error": error} if error else {})})
    return row


def get_restore(session: Session, restore_id: int) -> RestoreRow:
    row = session.get(RestoreRow, restore_id)
    if row is None:
        raise NoSuchBackup(f"no restore {restore_id}")
    return row


def restores(session: Session, *, policy: str | None = None, purpose: str | None = None,
             limit: int = 50) -> Sequence[RestoreRow]:
    """Restores, verifications or drills, newest first."""
    query = select(RestoreRow)
    if policy is not None:
        query = query.where(RestoreRow.policy == policy)
    if purpose is not None:
        query = query.where(RestoreRow.purpose == purpose)
    return session.scalars(query.order_by(RestoreRow.started_at.desc(), RestoreRow.id.desc())
                           .limit(limit)).all()


def _event(session: Session, row: BackupRow, kind: str, actor: str, now: datetime, outcome: str,
           details: dict[str, Any]) -> None:
    events.record(session, kind=kind, actor=actor, target=f"backup {row.id} of {row.policy}",
                  outcome=outcome, service=row.component,
                  details={"backup": row.id, "policy": row.policy, **details}, ts=now)


def _restore_event(session: Session, row: RestoreRow, kind: str, actor: str, now: datetime, outcome: str,
                   details: dict[str, Any]) -> None:
    events.record(session, kind=kind, actor=actor, target=f"{row.purpose} {row.id} of {row.policy}",
                  outcome=outcome, details={"restore": row.id, "purpose": row.purpose, "policy": row.policy,
                                            **({"backup": row.backup_id} if row.backup_id else {}),
                                            **details}, ts=now)
