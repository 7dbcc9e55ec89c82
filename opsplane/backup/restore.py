"""Restores (BAK-5): which backup, to which moment, into what; checked and planned before anything
is touched, so `--dry-run` prints the plan and a refusal changes nothing.

Three targets:
- a directory (`--to DIR`): the engine's data restored there, not started (a PostgreSQL data
  directory, files, an RDB file, a SQLite file, a dump);
- a new cluster (`--to new-cluster`): PostgreSQL restored beside production on a free port and
  left running, to read from or to switch to;
- production (no `--to`): over the running database, which needs `--force`, the operator role
  and a typed confirmation (asked by the CLI); for PostgreSQL through pgBackRest (stop, delta
  restore, start) and for file trees (restic restores over the paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from opsplane.backup import service
from opsplane.backup.compliance import recoverable
from opsplane.backup.engines import CopyRef, Engine
from opsplane.backup.policy import AppliedPolicy
from opsplane.backup.tables import BackupRow
from opsplane.clock import Clock
from opsplane.drivers.backup.base import BackupEngineError
from opsplane.errors import UsageError
from opsplane.store import Store

Target = Literal["production", "new-cluster", "directory"]
_IN_PLACE = ("pgbackrest", "files")  # engines that restore over what runs
_BESIDE = ("pgbackrest",)  # engines that start a new cluster of their own


class RestoreRefused(UsageError):
    """The restore cannot be done as asked; nothing was changed."""


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do, decided before anything is touched."""

    policy: str
    engine: str
    component: str | None
    backup_id: int
    repository: str
    label: str
    latest: bool  # to the newest recoverable point (PostgreSQL: the end of the archive)
    at: datetime | None
    target: Target
    directory: Path | None
    facts: dict[str, Any]

    @property
    def recovery(self) -> str:
        if self.at is not None:
            moment = self.at.isoformat(timespec="seconds")
            return f"{moment} (backup {self.backup_id} and the archive after it)"
        if self.latest and self.engine == "pgbackrest":
            return f"the newest archived moment (backup {self.backup_id} and the archive after it)"
        return f"backup {self.backup_id} as it ended"

    @property
    def where(self) -> str:
        """Where the data goes, as the end of "restore ... to ... {where}"."""
        if self.target == "production":
            return f"over the running {self.component or self.policy} (production)"
        if self.target == "new-cluster":
            return "into a new cluster beside production, on a free port, left running"
        return f"into the directory {self.directory}"

    def steps(self) -> list[str]:
        """The plan in sentences, as `--dry-run` prints it."""
        source = f"backup {self.backup_id} ({self.label}) from repository {self.repository}"
        steps = [f"restore {source}", f"to {self.recovery}", self.where]
        if self.target == "production" and self.engine == "pgbackrest":
            steps += ["stop the cluster (pg_ctl stop -m fast)",
                      "pgBackRest delta restore over its data directory (only what differs is written)",
                      "start it again with the options it ran with; it keeps archiving",
                      "wait until it accepts writes"]
        return steps

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "engine": self.engine, "backup": self.backup_id,
                "repository": self.repository, "label": self.label, "recovery": self.recovery,
                "at": self.at.isoformat() if self.at else None, "target": self.target,
                "directory": str(self.directory) if self.directory else None, "steps": self.steps()}


def plan_restore(session: Session, policy: AppliedPolicy, *, latest: bool, at: datetime | None,
                 backup_id: int | None, to: str | None, repository: str | None, force: bool,
                 now: datetime) -> RestorePlan:
    """The plan of a restore, or RestoreRefused saying why it cannot be done (exit 3)."""
    if sum((latest, at is not None, backup_id is not None)) != 1:
        raise RestoreRefused("say what to restore: exactly one of --latest, --at TIME or --backup ID")
    good = list(service.good(session, policy=policy.name))
    if not good:
        raise RestoreRefused(f"{policy.name} has no good backup to restore; `opsplane backup list "
                             f"{policy.name}` shows what there is")
    row = _chosen(session, policy, good, at=at, backup_id=backup_id, now=now)
    held = service.copies(session, [row.id])[row.id]
    copies = [copy for copy in held if repository is None or copy.repository == repository]
    if not copies:
        where = f" in repository {repository}" if repository else ""
        raise RestoreRefused(f"backup {row.id} of {policy.name} has no copy{where}; it is held in "
                             f"{', '.join(c.repository for c in held) or 'no repository'}")
    target, directory = _target(policy, to)
    if target == "production" and not force:
        raise RestoreRefused(
            f"restoring over the running {policy.component or policy.name} replaces what it holds now: add "
            f"--force (operator role; you will be asked to type its name), or restore beside it with "
            f"--to new-cluster or --to DIR")
    return RestorePlan(policy=policy.name, engine=policy.engine, component=policy.component, backup_id=row.id,
                       repository=copies[0].repository, label=copies[0].label,
                       latest=latest and policy.physical, at=at, target=target, directory=directory,
                       facts=dict(row.facts))


def _chosen(session: Session, policy: AppliedPolicy, good: list[BackupRow], *, at: datetime | None,
            backup_id: int | None, now: datetime) -> BackupRow:
    if backup_id is not None:
        row = service.get(session, backup_id)
        if row.policy != policy.name:
            raise RestoreRefused(f"backup {backup_id} is of {row.policy}, not {policy.name}")
        if row not in good:
            raise RestoreRefused(f"backup {backup_id} of {policy.name} is {row.state}, not good: choose "
                                 f"another with `opsplane backup list {policy.name}`")
        return row
    if at is None:
        return good[0]
    if not policy.physical:
        raise RestoreRefused(f"{policy.name} is backed up by {policy.engine}, which restores whole backups, "
                             f"not moments between them: use --backup ID or --latest")
    if at > now:
        raise RestoreRefused(f"{at.isoformat(timespec='seconds')} is in the future")
    finished = [r.finished_at for r in good if r.finished_at is not None]
    oldest = min(r.started_at for r in good)
    verdict = recoverable(at, finished, archive_window=(oldest, now))
    if not verdict.ok or verdict.base is None:
        raise RestoreRefused(f"cannot restore {policy.name} to {at.isoformat(timespec='seconds')}: "
                             f"{verdict.reason}")
    return next(r for r in good if r.finished_at == verdict.base)


def _target(policy: AppliedPolicy, to: str | None) -> tuple[Target, Path | None]:
    if to is None:
        if policy.engine not in _IN_PLACE:
            raise RestoreRefused(f"{policy.engine} backups are not restored over what runs: restore with "
                                 f"--to DIR and load the result yourself"
                                 + (" (or --to new-cluster)" if policy.engine in _BESIDE else ""))
        return "production", None
    if to == "new-cluster":
        if policy.engine not in _BESIDE:
            raise RestoreRefused(f"--to new-cluster starts a PostgreSQL cluster: {policy.name} is backed up "
                                 f"by {policy.engine}; use --to DIR")
        return "new-cluster", None
    directory = Path(to).absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RestoreRefused(f"{directory} is not an empty directory: restore into a new or empty one")
    return "directory", directory


@dataclass(frozen=True)
class RestoreDone:
    restore_id: int
    ok: bool
    seconds: float
    outcome: str  # what is where now, or what failed


def run_restore(store: Store, engine: Engine, plan: RestorePlan, *, scratch: Path, clock: Clock,
                actor: str) -> RestoreDone:
    """Carry out `plan`, recorded as a restore with its outcome and duration."""
    with store.session() as session:
        row = service.begin_restore(session, purpose="restore", policy=plan.policy, backup_id=plan.backup_id,
                                    repository=plan.repository, target=plan.where,
                                    recovery_target=plan.at.isoformat() if plan.at else
                                    ("latest" if plan.latest else f"backup {plan.backup_id}"),
                                    actor=actor, now=clock.now())
        restore_id = row.id
    started = clock.now()
    copy = CopyRef(plan.backup_id, plan.repository, plan.label, plan.facts)
    ok, error = True, None
    try:
        outcome = _carry_out(engine, plan, copy, scratch)
    except (BackupEngineError, OSError) as exc:
        ok, error, outcome = False, str(exc), str(exc)
    seconds = (clock.now() - started).total_seconds()
    with store.session() as session:
        service.finish_restore(session, service.get_restore(session, restore_id), ok=ok,
                               report={"seconds": round(seconds, 1), "outcome": outcome, **plan.as_dict()},
                               error=error, actor=actor, now=clock.now())
    return RestoreDone(restore_id, ok, seconds, outcome)


def _carry_out(engine: Any, plan: RestorePlan, copy: CopyRef, scratch: Path) -> str:
    if plan.target == "production":
        said: str = engine.restore_over(copy, at=plan.at, latest=plan.latest)
    elif plan.target == "new-cluster":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        said = engine.restore_beside(copy, scratch / f"{plan.policy}-{stamp}", at=plan.at, latest=plan.latest)
    else:
        assert plan.directory is not None
        said = engine.restore_into(copy, plan.directory, at=plan.at, latest=plan.latest)
    return said
