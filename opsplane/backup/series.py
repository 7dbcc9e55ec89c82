"""The backup domain's series for the alert rules: what falls short in each policy, as samples.

`serve`'s backup worker computes them from `status.py` and the alerts worker adds them to its
own scrape ("opsplane"), so the built-in rules BackupFailed, BackupStale, VerifyFailed,
OffsiteCopyMissing, DrillOverdue and PointInTimeBroken (alerts/pack.py) read them like any
scraped series. As with
the checks' series, only what is wrong has one: a policy that recovers drops out of the next
scrape, its series go stale and their alerts resolve."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opsplane.alerts.pack import (
    BACKUP_DRILL_OVERDUE,
    BACKUP_FAILED,
    BACKUP_OFFSITE_MISSING,
    BACKUP_PITR_BROKEN,
    BACKUP_STALE,
    BACKUP_VERIFY_FAILED,
)
from opsplane.backup.status import PolicyStatus

Labels = tuple[tuple[str, str], ...]
JOB = "opsplane"


def backup_samples(statuses: Iterable[PolicyStatus], *, env: str) -> list[tuple[Labels, float]]:
    """One scrape's samples for the policies' problems."""
    samples: list[tuple[Labels, float]] = []
    for status in statuses:
        labels = _labeller(status, env)
        if status.failures_in_a_row and status.last is not None:
            samples.append((labels(BACKUP_FAILED, kind=status.last.kind), float(status.failures_in_a_row)))
        for verdict in status.compliance.stale:
            age = verdict.age if verdict.age is not None else _since_first_try(status)
            if age:
                samples.append((labels(BACKUP_STALE, repository=verdict.repository), age))
        if status.verify_failed:
            samples.append((labels(BACKUP_VERIFY_FAILED), 1.0))
        for repository in status.missing_offsite:
            samples.append((labels(BACKUP_OFFSITE_MISSING, repository=repository), 1.0))
        if status.drill_overdue:
            samples.append((labels(BACKUP_DRILL_OVERDUE), status.drill_overdue))
        for repository, (since, _) in status.archive_broken.items():
            samples.append((labels(BACKUP_PITR_BROKEN, repository=repository,
                                   since=since.isoformat(timespec="seconds")),
                            max(1.0, (status.now - since).total_seconds())))
    return samples


def _labeller(status: PolicyStatus, env: str) -> Callable[..., Labels]:
    policy = status.policy
    common = {"policy": policy.name, "engine": policy.engine, "env": env, "job": JOB,
              **({"service": policy.component} if policy.component else {})}

    def labels(name: str, **extra: str) -> Labels:
        return tuple(sorted({"__name__": name, **common, **extra}.items()))

    return labels


def _since_first_try(status: PolicyStatus) -> float:
    """A repository that never had a good copy is stale once the policy's newest attempt is
    older than the RPO, valued by that age; before that, or with no attempt at all, there is
    nothing to say yet (the schedule runs one at once, and BackupFailed tells of failures)."""
    if status.last is None:
        return 0.0
    age = (status.now - status.last.started_at).total_seconds()
    return age if age > status.policy.rpo else 0.0
