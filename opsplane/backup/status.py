"""Where each backup policy stands: its last run, its newest good copy per repository against the
RPO, 3-2-1, its last verification and drill, and what is due next. One read of the store per
policy, judged by the pure core (compliance.py, schedule.py); `opsplane backup status`, the API,
the dashboard and the alert series (series.py) all show this one answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from opsplane.backup import service
from opsplane.backup.compliance import Compliance, RepositoryCopy, assess, duration_words
from opsplane.backup.policy import AppliedPolicy, applied
from opsplane.backup.schedule import parse_cron
from opsplane.backup.tables import BackupRow, RestoreRow

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

# A drill or verification counts as overdue once its slot has passed by this much more than
# the time it is allowed to take (the RTO): time for `serve` to have run it.
_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class PolicyStatus:
    """One policy's state at `now`."""

    policy: AppliedPolicy
    now: datetime
    last: BackupRow | None  # the newest backup, whatever its state
    running: bool  # a backup is being taken now
    failures_in_a_row: int
    compliance: Compliance
    last_verify: RestoreRow | None
    last_drill: RestoreRow | None
    repository_problems: dict[str, str]  # the newest engine check of each repository that failed
    archive_broken: dict[str, tuple[datetime, str]]  # repository -> since when WAL is missing, why
    missing_offsite: tuple[str, ...]  # offsite repositories without a good copy
    verify_overdue: float  # seconds; 0 when on time
    drill_overdue: float
    next_runs: dict[str, datetime]  # kind -> next scheduled start

    @property
    def verify_failed(self) -> bool:
        return (self.last_verify is not None and self.last_verify.state == "failed") or bool(
            self.repository_problems)

    @property
    def problems(self) -> list[str]:
        """What is wrong, one sentence each: what the alerts would say."""
        found = []
        if self.failures_in_a_row and self.last is not None:
            count = self.failures_in_a_row
            found.append(f"the last {count} backup{'s' if count > 1 else ''} failed: {self.last.error}")
        found += [f"{verdict.repository}: {verdict.sentence}" for verdict in self.compliance.stale]
        found += list(self.compliance.violations)
        if self.last_verify is not None and self.last_verify.state == "failed":
            found.append(f"verification {self.last_verify.id} failed: {self.last_verify.error}")
        found += [f"repository {repo}: {problem}" for repo, problem in self.repository_problems.items()]
        found += [f"WAL archive in {repo} broken: no restore to after {since.isoformat(timespec='seconds')} "
                  f"is possible ({reason})" for repo, (since, reason) in self.archive_broken.items()]
        if self.verify_overdue:
            found.append(f"verification overdue by {duration_words(self.verify_overdue)}")
        if self.drill_overdue:
            found.append(f"restore drill overdue by {duration_words(self.drill_overdue)}")
        return found

    def as_dict(self) -> dict[str, Any]:
        policy, compliance = self.policy, self.compliance
        return {
            "policy": policy.name, "engine": policy.engine, "component": policy.component,
            "rpo_seconds": policy.rpo, "rto_seconds": policy.rto, "running": self.running,
            "last": _backup(self.last), "failures_in_a_row": self.failures_in_a_row,
            "repositories": [{
                "repository": verdict.repository, "newest": _iso(verdict.newest),
                "measured": verdict.measured,
                "age_seconds": verdict.age, "stale": verdict.stale, "sentence": verdict.sentence,
                "problem": self.repository_problems.get(verdict.repository),
                "archive_broken_since": _iso(self.archive_broken[verdict.repository][0])
                if verdict.repository in self.archive_broken else None,
            } for verdict in compliance.freshness],
            "rule_321": {"met": compliance.meets_321, "copies": list(compliance.copies),
                         "media": list(compliance.media), "offsite": list(compliance.offsite),
                         "violations": list(compliance.violations)},
            "last_verify": _restore(self.last_verify), "last_drill": _restore(self.last_drill),
            "verify_overdue_seconds": self.verify_overdue, "drill_overdue_seconds": self.drill_overdue,
            "next_runs": {kind: _iso(at) for kind, at in self.next_runs.items()},
            "problems": self.problems,
        }


def policy_status(session: Session, inv: Inventory, policy: AppliedPolicy, *, now: datetime,
                  archived: Mapping[str, datetime] | None = None) -> PolicyStatus:
    """The state of `policy` at `now`, read from the catalog; `archived` is, for a policy that
    archives continuously, how far a restore from each repository reaches beyond its backups
    (archive.archived_until)."""
    rows = list(service.get_all(session, policy=policy.name, limit=200))
    last = rows[0] if rows else None
    failures = 0
    for row in rows:
        if row.state == "running":
            continue
        if row.state != "failed":
            break
        failures += 1
    running = any(row.state == "running" and service.holder_alive(session, row, now=now) for row in rows)
    newest = service.newest_good_by_repository(session, policy=policy.name)
    repos = inv.backup.repositories
    reach = archived or {}
    copies = [RepositoryCopy(repository=name, medium=repos[name].medium, offsite=repos[name].is_offsite,
                             finished=newest[name].finished_at if name in newest else None,
                             archived_until=reach.get(name) if name in newest else None)
              for name in policy.repositories]
    compliance = assess(copies, rpo=policy.rpo, now=now)
    verifies = service.restores(session, policy=policy.name, purpose="verify", limit=1)
    drills = service.restores(session, policy=policy.name, purpose="drill", limit=1)
    checks = service.last_repository_checks(session, policy=policy.name)
    problems = {repo: str(event.details.get("problem", "check failed")) for repo, event in checks.items()
                if event.outcome == "failed" and repo in policy.repositories}
    first_good = min((row.finished_at for row in rows if row.finished_at and row.state in
                      ("complete", "verified", "verify-failed")), default=None)
    tz = inv.backup.time_zone
    return PolicyStatus(
        policy=policy, now=now, last=last, running=running, failures_in_a_row=failures,
        compliance=compliance, last_verify=verifies[0] if verifies else None,
        last_drill=drills[0] if drills else None, repository_problems=problems,
        archive_broken=service.archive_breaks(session, policy=policy.name) if policy.physical else {},
        # a copy missing offsite while another repository holds one: before the first backup
        # ends there is nothing to copy (BackupStale says so once that lasts beyond the RPO)
        missing_offsite=tuple(copy.repository for copy in copies if copy.offsite and copy.finished is None)
        if any(copy.finished is not None for copy in copies) else (),
        verify_overdue=overdue(policy.verify, tz, verifies[0] if verifies else None, first_good,
                               allowed=policy.rto, now=now),
        drill_overdue=overdue(policy.drill, tz, drills[0] if drills else None, first_good,
                              allowed=policy.rto, now=now),
        next_runs={kind: parse_cron(cron).next_after(now, tz) for kind, cron in policy.kinds.items()},
    )


def overdue(cron: str, tz: str, last: RestoreRow | None, first_good: datetime | None, *, allowed: float,
            now: datetime) -> float:
    """Seconds by which a scheduled verification or drill is overdue: its latest slot passed,
    plus the time it may take and a grace, without one having started since. A policy with no
    good backup yet has nothing to prove, so nothing is overdue before its first one."""
    if first_good is None:
        return 0.0
    slot = parse_cron(cron).previous_at_or_before(now, tz)
    if slot <= first_good or (last is not None and last.started_at >= slot):
        return 0.0
    late = (now - slot - timedelta(seconds=allowed) - _GRACE).total_seconds()
    return max(0.0, late)


def statuses(session: Session, inv: Inventory, *, now: datetime,
             archived: Mapping[str, Mapping[str, datetime]] | None = None) -> list[PolicyStatus]:
    """Every policy's state, in the inventory's order; `archived` by policy, as `policy_status`
    takes it."""
    reach = archived or {}
    return [policy_status(session, inv, policy, now=now, archived=reach.get(policy.name))
            for policy in applied(inv)]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _backup(row: BackupRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "kind": row.kind, "state": row.state, "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at), "size_bytes": row.size_bytes, "error": row.error}


def _restore(row: RestoreRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "state": row.state, "backup": row.backup_id, "repository": row.repository,
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at), "error": row.error,
            "report": row.report}
