"""What the dashboard's backup pages show, read from the store through the backup domain.

Each policy's card is `backup.status.PolicyStatus.as_dict()`, the same answer `opsplane backup
status` and `/api/v1/backups/status` give, turned into plain values for the templates: its last
backup, each repository's newest recoverable point against the RPO, 3-2-1, the last verification
and drill, the next runs and the problems. A policy's own page adds its catalog (every backup
with its copies per repository), its restores, verifications and drills with their reports,
and its `backup.*` and `restore.*` events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsplane.backup import service
from opsplane.backup.compliance import duration_words
from opsplane.backup.policy import AppliedPolicy, UnknownPolicy, apply
from opsplane.backup.status import policy_status, statuses
from opsplane.events.tables import Event
from opsplane.units import Unit, format_value
from opsplane.web.pages import EventRow, event_rows

if TYPE_CHECKING:
    from opsplane.backup.tables import BackupCopyRow, BackupRow, RestoreRow
    from opsplane.config.models import Inventory

CATALOG_LIMIT = 100
RESTORE_LIMIT = 50
EVENT_LIMIT = 200
# The colour of each state's badge (its name is always written in it).
TONES = {"complete": "good", "verified": "good", "succeeded": "good", "running": "moving",
         "failed": "bad", "verify-failed": "bad", "expired": "none"}


class _Span:
    """What a backup line and a restore line share: the tone of their state, how long they took."""

    state: str
    started_at: datetime
    finished_at: datetime | None

    @property
    def tone(self) -> str:
        return TONES.get(self.state, "none")

    @property
    def took(self) -> str:
        if self.finished_at is None:
            return "-"
        return duration_words((self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class BackupLine(_Span):
    """A backup as a card or the catalog shows it."""

    id: int
    kind: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    size_bytes: int | None
    error: str | None


@dataclass(frozen=True)
class RepositoryLine:
    """One repository of a policy: where it is, and its newest recoverable point against the RPO."""

    repository: str
    medium: str
    offsite: bool
    newest: datetime | None
    measured: str | None  # "backup" or "archive"
    age_seconds: float | None
    stale: bool
    sentence: str
    problem: str | None  # what the newest engine check of the repository found


@dataclass(frozen=True)
class RestoreLine(_Span):
    """A restore, verification or drill, with its report."""

    id: int
    purpose: str
    state: str
    backup: int | None
    repository: str | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    report: Mapping[str, Any]
    target: str = ""
    recovery_target: str | None = None
    requested_by: str = ""


@dataclass(frozen=True)
class Target:
    """A drill's measured RTO or RPO against the policy's target."""

    name: str  # RTO, RPO
    measured: float
    target: float

    @property
    def met(self) -> bool:
        return self.measured <= self.target

    @property
    def text(self) -> str:
        return f"{self.name} {duration_words(self.measured)} (target {duration_words(self.target)})"


@dataclass(frozen=True)
class PolicyCard:
    """One policy's state at `now`, as `PolicyStatus.as_dict()` gives it."""

    name: str
    engine: str
    component: str | None
    rpo: float
    rto: float
    running: bool
    last: BackupLine | None
    failures_in_a_row: int
    repositories: tuple[RepositoryLine, ...]
    meets_321: bool
    copies: tuple[str, ...]
    media: tuple[str, ...]
    offsite: tuple[str, ...]
    violations: tuple[str, ...]
    last_verify: RestoreLine | None
    last_drill: RestoreLine | None
    verify_overdue: float
    drill_overdue: float
    next_runs: tuple[tuple[str, datetime], ...]  # (kind, when), soonest first
    problems: tuple[str, ...]

    @property
    def state(self) -> str:
        """'sound', 'running' (sound, and a backup is being taken), 'problems' or 'failing'
        (the last backups failed or no repository holds a copy within the RPO)."""
        if self.failures_in_a_row or (self.repositories and all(r.stale for r in self.repositories)):
            return "failing"
        if self.problems:
            return "problems"
        return "running" if self.running else "sound"

    @property
    def state_class(self) -> str:
        return {"failing": "state-critical", "problems": "state-warning"}.get(self.state, "state-ok")

    @property
    def state_words(self) -> str:
        if self.state in ("failing", "problems"):
            count = len(self.problems)
            return f"{count} problem{'s' if count != 1 else ''}"
        return "backing up" if self.state == "running" else "sound"


@dataclass(frozen=True)
class PolicyPage:
    """Everything a policy's page shows."""

    card: PolicyCard
    kinds: tuple[tuple[str, str], ...]  # (kind, cron)
    verify_cron: str
    drill_cron: str
    catalog: tuple[CatalogLine, ...]
    restores: tuple[RestoreLine, ...]
    events: list[EventRow]


@dataclass(frozen=True)
class CopyLine:
    repository: str
    label: str
    stored_bytes: int | None


@dataclass(frozen=True)
class CatalogLine:
    """One backup of the catalog, with the copies the repositories still hold."""

    backup: BackupLine
    parent: int | None
    trigger: str
    requested_by: str
    verified_at: datetime | None
    copies: tuple[CopyLine, ...]


# --- the list ---------------------------------------------------------------------------------


def policy_cards(session: Session, inv: Inventory, *, now: datetime,
                 archived: Mapping[str, Mapping[str, datetime]] | None = None) -> list[PolicyCard]:
    """Every policy's card, in the inventory's order; `archived`: how far the WAL archive
    reaches, by policy and repository, as `serve` last looked."""
    return [card(found.as_dict(), inv) for found in statuses(session, inv, now=now, archived=archived)]


def card(status: Mapping[str, Any], inv: Inventory) -> PolicyCard:
    """A policy's card from its `PolicyStatus.as_dict()`; the repositories' media and whether
    they are offsite come from the inventory."""
    rule = status["rule_321"]
    settings = inv.backup.repositories
    repositories = []
    for repo in status["repositories"]:
        kept = settings.get(repo["repository"])
        repositories.append(RepositoryLine(
            repository=repo["repository"], medium=kept.medium if kept else "?",
            offsite=bool(kept and kept.is_offsite), newest=_time(repo["newest"]),
            measured=repo["measured"], age_seconds=repo["age_seconds"], stale=bool(repo["stale"]),
            sentence=repo["sentence"], problem=repo.get("problem")))
    next_runs = sorted(((kind, when) for kind, at in status["next_runs"].items()
                        if (when := _time(at)) is not None), key=lambda item: item[1])
    return PolicyCard(
        name=status["policy"], engine=status["engine"], component=status["component"],
        rpo=float(status["rpo_seconds"]), rto=float(status["rto_seconds"]), running=bool(status["running"]),
        last=_backup_line(status["last"]), failures_in_a_row=int(status["failures_in_a_row"]),
        repositories=tuple(repositories), meets_321=bool(rule["met"]), copies=tuple(rule["copies"]),
        media=tuple(rule["media"]), offsite=tuple(rule["offsite"]), violations=tuple(rule["violations"]),
        last_verify=_restore_line(status["last_verify"], "verify"),
        last_drill=_restore_line(status["last_drill"], "drill"),
        verify_overdue=float(status["verify_overdue_seconds"]),
        drill_overdue=float(status["drill_overdue_seconds"]),
        next_runs=tuple(next_runs), problems=tuple(status["problems"]),
    )


# --- one policy -------------------------------------------------------------------------------


def policy_page(session: Session, inv: Inventory, name: str, *, now: datetime,
                archived: Mapping[str, Mapping[str, datetime]] | None = None) -> PolicyPage | None:
    """The page of policy `name`; None when the inventory has no such policy."""
    try:
        policy = apply(inv, name)
    except UnknownPolicy:
        return None
    rows = service.get_all(session, policy=name, limit=CATALOG_LIMIT)
    held = service.copies(session, [row.id for row in rows])
    return PolicyPage(
        card=card(policy_status(session, inv, policy, now=now,
                                archived=(archived or {}).get(name)).as_dict(), inv),
        kinds=tuple(policy.kinds.items()), verify_cron=policy.verify, drill_cron=policy.drill,
        catalog=tuple(catalog_line(row, held[row.id]) for row in rows),
        restores=tuple(restore_line(row) for row in service.restores(session, policy=name,
                                                                      limit=RESTORE_LIMIT)),
        events=event_rows(policy_events(session, policy)),
    )


def catalog_line(row: BackupRow, held: Sequence[BackupCopyRow]) -> CatalogLine:
    return CatalogLine(
        backup=BackupLine(row.id, row.kind, row.state, row.started_at, row.finished_at, row.size_bytes,
                          row.error),
        parent=row.parent_id, trigger=row.trigger, requested_by=row.requested_by,
        verified_at=row.verified_at,
        copies=tuple(CopyLine(copy.repository, copy.label, copy.stored_bytes) for copy in held))


def restore_line(row: RestoreRow) -> RestoreLine:
    return RestoreLine(id=row.id, purpose=row.purpose, state=row.state, backup=row.backup_id,
                       repository=row.repository, started_at=row.started_at, finished_at=row.finished_at,
                       error=row.error, report=dict(row.report or {}), target=row.target,
                       recovery_target=row.recovery_target, requested_by=row.requested_by)


def policy_events(session: Session, policy: AppliedPolicy, *, limit: int = EVENT_LIMIT) -> Sequence[Event]:
    """The policy's `backup.*` and `restore.*` events, newest first: every such event names its
    policy at the end of its target ('backup 3 of postgres-main', 'verify 2 of redis',
    'repository local of redis')."""
    kinds = or_(Event.kind.startswith("backup.", autoescape=True),
                Event.kind.startswith("restore.", autoescape=True))
    query = (select(Event).where(kinds, Event.target.endswith(f" of {policy.name}", autoescape=True))
             .order_by(Event.id.desc()).limit(limit))
    return session.scalars(query).all()


def drill_targets(line: RestoreLine, policy: PolicyCard) -> tuple[Target, ...]:
    """A drill's measured RTO and RPO (its report's `rto_seconds` and `rpo_seconds`) against the
    policy's targets; none when the report does not have them."""
    found = []
    for name, key, target in (("RTO", "rto_seconds", policy.rto), ("RPO", "rpo_seconds", policy.rpo)):
        value = line.report.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(Target(name, float(value), target))
    return tuple(found)


def report_lines(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A restore's report as (name, text) lines: numbers of seconds and bytes in their units,
    tables of counts as 'name count' lists, problems one after the other."""
    lines = []
    for key, value in report.items():
        if key in ("rto_seconds", "rpo_seconds"):
            continue  # shown against their targets
        lines.append((key.replace("_", " "), _report_value(key, value)))
    return lines


def _report_value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if key == "seconds" or key.endswith("_seconds"):
            return format_value(float(value), Unit.SECONDS)
        if key.endswith("bytes"):
            return format_value(float(value), Unit.BYTES)
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"
    if isinstance(value, Mapping):
        if not value:
            return "none"
        return ", ".join(f"{name} {_report_value('', item)}" for name, item in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_report_value("", item) for item in value) if value else "none"
    return str(value)


def _backup_line(found: Mapping[str, Any] | None) -> BackupLine | None:
    if found is None:
        return None
    started = _time(found["started_at"])
    assert started is not None
    return BackupLine(id=int(found["id"]), kind=found["kind"], state=found["state"], started_at=started,
                      finished_at=_time(found["finished_at"]), size_bytes=found["size_bytes"],
                      error=found["error"])


def _restore_line(found: Mapping[str, Any] | None, purpose: str) -> RestoreLine | None:
    if found is None:
        return None
    started = _time(found["started_at"])
    assert started is not None
    return RestoreLine(id=int(found["id"]), purpose=purpose, state=found["state"], backup=found["backup"],
                       repository=found["repository"], started_at=started,
                       finished_at=_time(found["finished_at"]), error=found["error"],
                       report=dict(found.get("report") or {}))


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
