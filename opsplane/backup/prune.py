"""Retention carried out (BAK-4): the policy's good backups judged by `retention.plan_retention`,
and those it drops removed from every repository that holds them, dependants first, each an
event. Pruning never leaves fewer good backups than the policy's `min_good`: the plan keeps the
newest ones to make up the number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsplane.backup import service
from opsplane.backup.engines import Engine
from opsplane.backup.policy import AppliedPolicy
from opsplane.backup.retention import GoodBackup, RetentionPlan, RetentionPolicy, plan_retention
from opsplane.backup.tables import BackupRow
from opsplane.clock import Clock
from opsplane.drivers.backup.base import BackupEngineError
from opsplane.store import Store

_KINDS = {"full", "diff", "incr", "snapshot", "dump", "files"}


@dataclass(frozen=True)
class Pruned:
    """What pruning one policy decided and did: the plan, the backups removed, and those a
    repository refused to remove (with why: they stay in the catalog and are tried again)."""

    policy: str
    plan: RetentionPlan
    removed: tuple[int, ...]
    failed: tuple[tuple[int, str], ...]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "dry_run": self.dry_run, "summary": self.plan.summary(),
                "decisions": [{"backup": int(d.backup.id), "keep": d.keep, "reasons": list(d.reasons),
                               "finished": d.backup.finished.isoformat()} for d in self.plan.decisions],
                "removed": list(self.removed),
                "failed": [{"backup": backup, "error": error} for backup, error in self.failed]}


def retention_policy(policy: AppliedPolicy, time_zone: str) -> RetentionPolicy:
    """The inventory's retention settings as the pure core takes them."""
    settings = policy.retention
    return RetentionPolicy(keep_last=settings.keep_last, hourly=settings.hourly, daily=settings.daily,
                           weekly=settings.weekly, monthly=settings.monthly, yearly=settings.yearly,
                           recovery_window=settings.recovery_window, min_good=settings.min_good,
                           timezone=time_zone)


def plan(rows: Sequence[BackupRow], policy: AppliedPolicy, *, time_zone: str, now: datetime) -> RetentionPlan:
    """The retention plan over the policy's good backups (`rows`)."""
    good = {row.id for row in rows}
    candidates = [GoodBackup(id=str(row.id), finished=row.finished_at or row.started_at,
                             kind=row.kind if row.kind in _KINDS else "full",  # type: ignore[arg-type]
                             depends_on=str(row.parent_id) if row.parent_id in good else None)
                  for row in rows]
    return plan_retention(candidates, retention_policy(policy, time_zone), now)


def prune(store: Store, engine: Engine, *, time_zone: str, clock: Clock, actor: str,
          dry_run: bool = False) -> Pruned:
    """Judge the policy's good backups and, unless `dry_run`, remove what the plan drops."""
    policy = engine.policy
    now = clock.now()
    with store.session() as session:
        rows = list(service.good(session, policy=policy.name))
        decided = plan(rows, policy, time_zone=time_zone, now=now)
        held = service.copies(session, [row.id for row in rows])
        labels = {row.id: [(copy.repository, copy.label) for copy in held[row.id]] for row in rows}
    if dry_run:
        return Pruned(policy.name, decided, (), (), True)
    removed: list[int] = []
    failed: list[tuple[int, str]] = []
    for backup in decided.drop:
        backup_id = int(backup.id)
        try:
            for repository, label in labels[backup_id]:
                engine.expire(repository, label)
        except BackupEngineError as exc:
            failed.append((backup_id, str(exc)))
            continue
        reasons = "; ".join(decided.decision(backup.id).reasons)
        with store.session() as session:
            service.expire(session, service.get(session, backup_id), reason=reasons, actor=actor,
                           now=clock.now())
        removed.append(backup_id)
    return Pruned(policy.name, decided, tuple(removed), tuple(failed), False)
