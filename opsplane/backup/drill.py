"""Restore drills (BAK-6): how long a restore really takes and how much data it really loses,
measured rather than assumed, and kept as evidence.

A drill writes a marker row into production every second (PostgreSQL), starts the clock,
restores the newest recoverable point into a scratch server and stops the clock once that
server answers queries with its data checked:

- RTO: from the drill's start to the restored copy healthy;
- RPO: from the drill's start back to the newest moment the copy holds: the newest marker, or
  the last transaction recovery replayed when that is newer (for engines without rows to mark,
  back to the end of the backup restored).

Both are compared with the policy's targets; the report (JSON, and Markdown for people) is kept
in the store as a restore of purpose `drill`, with its events."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsplane.backup import service
from opsplane.backup.compliance import duration_words
from opsplane.backup.engines import CopyRef, Engine
from opsplane.clock import Clock
from opsplane.drivers.backup.base import BackupEngineError, Progress, no_progress
from opsplane.store import Store

LEAD = 3.0  # seconds of markers written before the clock starts
EVERY = 1.0


@dataclass(frozen=True)
class DrillReport:
    """What one drill measured, against the policy's targets."""

    drill_id: int
    policy: str
    engine: str
    backup_id: int
    repository: str
    started: datetime
    rto_seconds: float | None
    rpo_seconds: float | None
    rto_target: float
    rpo_target: float
    markers_written: int
    newest_marker: datetime | None
    problems: tuple[str, ...] = field(default_factory=tuple)
    replayed_to: datetime | None = None  # the commit time of the last transaction recovery replayed

    @property
    def restored(self) -> bool:
        return self.rto_seconds is not None and not self.problems

    @property
    def rto_met(self) -> bool:
        return self.restored and self.rto_seconds is not None and self.rto_seconds <= self.rto_target

    @property
    def rpo_met(self) -> bool:
        return self.restored and self.rpo_seconds is not None and self.rpo_seconds <= self.rpo_target

    def as_dict(self) -> dict[str, Any]:
        return {"drill": self.drill_id, "policy": self.policy, "engine": self.engine,
                "backup": self.backup_id, "repository": self.repository, "started": self.started.isoformat(),
                "rto_seconds": _round(self.rto_seconds), "rpo_seconds": _round(self.rpo_seconds),
                "rto_target_seconds": self.rto_target, "rpo_target_seconds": self.rpo_target,
                "rto_met": self.rto_met, "rpo_met": self.rpo_met, "restored": self.restored,
                "markers_written": self.markers_written,
                "newest_marker": self.newest_marker.isoformat() if self.newest_marker else None,
                "replayed_to": self.replayed_to.isoformat() if self.replayed_to else None,
                "problems": list(self.problems)}

    def markdown(self) -> str:
        """The report as evidence for a person or an auditor."""
        def cell(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} s ({duration_words(value)})"

        def verdict(met: bool) -> str:
            return "met" if met else "**missed**"

        lines = [f"# Restore drill {self.drill_id}: {self.policy}", "",
                 f"- Started: {self.started.isoformat(timespec='seconds')}",
                 f"- Engine: {self.engine}; backup {self.backup_id} from repository {self.repository}",
                 f"- Marker rows written: {self.markers_written}"
                 + (f"; newest in the copy: {self.newest_marker.isoformat(timespec='seconds')}"
                    if self.newest_marker else "")
                 + (f"; last transaction replayed: {self.replayed_to.isoformat(timespec='seconds')}"
                    if self.replayed_to else ""),
                 "", "| | measured | target | |", "|---|---|---|---|",
                 f"| RTO | {cell(self.rto_seconds)} | {duration_words(self.rto_target)} | "
                 f"{verdict(self.rto_met)} |",
                 f"| RPO | {cell(self.rpo_seconds)} | {duration_words(self.rpo_target)} | "
                 f"{verdict(self.rpo_met)} |", ""]
        if self.problems:
            lines += ["## Problems", "", *[f"- {problem}" for problem in self.problems], ""]
        return "\n".join(lines)


def run_drill(store: Store, engine: Engine, *, scratch: Path, clock: Clock, actor: str,
              repository: str | None = None, progress: Progress = no_progress,
              lead: float = LEAD) -> DrillReport:
    """Drill a restore of the policy's newest good backup (from `repository`, else the first
    holding it) to its newest recoverable point; the report, kept in the store."""
    policy = engine.policy
    with store.session() as session:
        rows = list(service.good(session, policy=policy.name, limit=1))
        if not rows:
            raise service.NoSuchBackup(f"{policy.name} has no good backup to drill a restore of; take one "
                                       f"with `opsplane backup run {policy.name}`")
        row = rows[0]
        held = [c for c in service.copies(session, [row.id])[row.id]
                if repository is None or c.repository == repository]
        if not held:
            raise service.NoSuchBackup(f"backup {row.id} of {policy.name} has no copy"
                                       + (f" in {repository}" if repository else ""))
        copy = CopyRef(row.id, held[0].repository, held[0].label, row.facts, row.checksum)
        backup_end = row.finished_at
        restore = service.begin_restore(session, purpose="drill", policy=policy.name, backup_id=row.id,
                                        repository=copy.repository,
                                        target=f"scratch server under {scratch}",
                                        recovery_target="latest", actor=actor, now=clock.now())
        drill_id = restore.id
    name = f"{drill_id}-{secrets.token_hex(3)}"
    problems: list[str] = []
    rto = rpo = None
    newest = replayed = None
    written = 0
    started = clock.now()
    try:
        with engine.markers(name, EVERY) as count:
            progress("markers", None)
            time.sleep(lead)  # real rows over real seconds: what is measured is the real loss
            started = clock.now()
            try:
                progress("restore", None)
                with engine.restore_scratch(copy, scratch, latest=True, drill=name) as restored:
                    for check, found in restored.checks.items():
                        problems += [f"{check}: {problem}" for problem in found]
                    rto = (clock.now() - started).total_seconds()
                    newest = restored.newest_marker
                    replayed = restored.recovered_to
            finally:
                written = count()
    except (BackupEngineError, OSError) as exc:
        problems.append(str(exc))
        rto = None
    except Exception as exc:  # psycopg and sandbox errors from the marker rows or the scratch server
        problems.append(f"{type(exc).__name__}: {exc}")
        rto = None
    if rto is not None:
        # the newest of what the copy holds: this drill's markers, the last transaction replayed
        reached = [moment for moment in (newest, replayed) if moment is not None]
        point = max(reached) if reached else backup_end
        rpo = max(0.0, (started - point).total_seconds()) if point is not None else None
    report = DrillReport(drill_id=drill_id, policy=policy.name, engine=policy.engine,
                         backup_id=copy.backup_id, repository=copy.repository, started=started,
                         rto_seconds=rto, rpo_seconds=rpo, rto_target=policy.rto, rpo_target=policy.rpo,
                         markers_written=written, newest_marker=newest, problems=tuple(problems),
                         replayed_to=replayed)
    with store.session() as session:
        service.finish_restore(session, service.get_restore(session, drill_id), ok=report.restored,
                               report={**report.as_dict(), "markdown": report.markdown()},
                               error=problems[0] if problems else None, actor=actor, now=clock.now())
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
