"""Which backups of one component to keep and which to delete, and why.

`plan_retention` takes the component's good backups and a `RetentionPolicy` and answers with a
`RetentionPlan`: for each backup, keep or drop and the reasons in words, and the backups to
drop in an order that is safe to carry out (a backup is deleted only after every backup that
depends on it). The rules, each keeping what it names:

- keep_last: the newest N backups;
- hourly, daily, weekly, monthly, yearly (grandfather-father-son): the newest backup of each
  of the N most recent local hours, days, ISO weeks, months or years that have a backup, in
  the policy's time zone; a backup can count for several of them;
- recovery_window: everything needed to restore to any point in the last so many seconds: the
  newest self-contained backup (one that depends on no other) finished at or before the
  window's start, and every backup after it;
- a kept differential or incremental backup keeps the backups it depends on, back to its full;
- min_good: never fewer than this many (default 2): the newest backups make up the number;
- the newest backup is always kept.

Only good backups are input: the caller leaves out failed and running ones, which are neither
counted nor kept by these rules. Times are passed in; nothing here reads a clock or a store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BackupKind = Literal["full", "diff", "incr", "snapshot", "dump", "files"]
KIND_WORDS: dict[str, str] = {
    "full": "full backup", "diff": "differential backup", "incr": "incremental backup",
    "snapshot": "snapshot", "dump": "dump", "files": "file backup",
}
CALENDAR_RULES = ("hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class GoodBackup:
    """One good (finished, not failed) backup: `depends_on` is the id of the backup a
    differential or incremental one is applied on top of, None for one that restores alone."""

    id: str
    finished: datetime
    kind: BackupKind = "full"
    depends_on: str | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    """How many backups of one component to keep; every count defaults to none.

    `recovery_window` is in seconds (None: no window); `timezone` is the IANA zone whose local
    hours, days, weeks, months and years the calendar counts use."""

    keep_last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    recovery_window: float | None = None
    min_good: int = 2
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        for name in ("keep_last", *CALENDAR_RULES, "min_good"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {name} must be a whole number of 0 or more, got {value!r}")
        if self.recovery_window is not None and not self.recovery_window > 0:
            raise ValueError(f"retention recovery_window must be a positive number of seconds, "
                             f"got {self.recovery_window!r}")
        _zone(self.timezone)

    def describe(self) -> str:
        """The policy in a line: 'last 3, daily 7, weekly 4, 30-day recovery window, at least 2'."""
        parts = [f"last {self.keep_last}"] if self.keep_last else []
        parts += [f"{rule} {getattr(self, rule)}" for rule in CALENDAR_RULES if getattr(self, rule)]
        if self.recovery_window is not None:
            parts.append(f"{window_words(self.recovery_window)} recovery window")
        parts.append(f"at least {self.min_good}")
        return ", ".join(parts)


@dataclass(frozen=True)
class RetentionDecision:
    """What becomes of one backup: `keep` and, for a kept one, every reason it is kept; for a
    dropped one, the one sentence why no rule keeps it."""

    backup: GoodBackup
    keep: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{'keep' if self.keep else 'drop'} {self.backup.id}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class RetentionPlan:
    """The decision for every backup, newest first, and the backups to delete in a safe order:
    each one after every backup that depends on it."""

    decisions: tuple[RetentionDecision, ...]
    drop: tuple[GoodBackup, ...]

    @property
    def keep(self) -> tuple[GoodBackup, ...]:
        """The backups kept, newest first."""
        return tuple(decision.backup for decision in self.decisions if decision.keep)

    def decision(self, backup_id: str) -> RetentionDecision:
        """The decision for the backup named `backup_id`; KeyError when it was not in the plan."""
        for decision in self.decisions:
            if decision.backup.id == backup_id:
                return decision
        raise KeyError(backup_id)

    def summary(self) -> str:
        """'keeps 12 of 40 backups, drops 28'."""
        total = len(self.decisions)
        plural = "s" if total != 1 else ""
        return f"keeps {total - len(self.drop)} of {total} backup{plural}, drops {len(self.drop)}"


def plan_retention(backups: Iterable[GoodBackup], policy: RetentionPolicy, now: datetime) -> RetentionPlan:
    """Which of one component's good `backups` to keep under `policy` at `now` (an aware
    datetime), with the reasons, and the ones to drop in a safe order. ValueError when two
    backups share an id, a time has no UTC offset, or a backup depends on one that is not
    among them (or, through others, on itself): nothing is dropped from a broken chain."""
    newest_first = _checked(list(backups), now)
    by_id = {backup.id: backup for backup in newest_first}
    reasons: dict[str, list[str]] = {backup.id: [] for backup in newest_first}
    if not newest_first:
        return RetentionPlan((), ())

    def keep(backup: GoodBackup, reason: str) -> None:
        reasons[backup.id].append(reason)

    reasons[newest_first[0].id].append("the newest good backup")
    for number, backup in enumerate(newest_first[:policy.keep_last], start=1):
        keep(backup, f"one of the last {policy.keep_last} ({number} of {policy.keep_last})")
    zone = _zone(policy.timezone)
    for rule in CALENDAR_RULES:
        _calendar(rule, getattr(policy, rule), newest_first, zone, keep)
    if policy.recovery_window is not None:
        _window(policy.recovery_window, newest_first, _utc(now, "now"), keep)
    _chains(newest_first, by_id, reasons)
    kept = sum(1 for backup in newest_first if reasons[backup.id])
    for backup in newest_first:
        if kept >= policy.min_good:
            break
        if not reasons[backup.id]:
            keep(backup, f"minimum of {policy.min_good} good copies")
            _chains(newest_first, by_id, reasons)
            kept = sum(1 for candidate in newest_first if reasons[candidate.id])
    dropped = f"no rule keeps it ({policy.describe()})"
    decisions = tuple(RetentionDecision(b, bool(reasons[b.id]), tuple(reasons[b.id]) or (dropped,))
                      for b in newest_first)
    return RetentionPlan(decisions, _safe_order([d.backup for d in decisions if not d.keep]))


def window_words(seconds: float) -> str:
    """A recovery window as it is named: '30-day', '36-hour', '90-minute', '45-second'."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}-{unit}"
    return f"{seconds:g}-second"


def _calendar(rule: str, count: int, newest_first: Sequence[GoodBackup], zone: tzinfo,
              keep: Callable[[GoodBackup, str], None]) -> None:
    """Keep the newest backup of each of the `count` most recent local periods with a backup."""
    last: str | None = None
    taken = 0
    for backup in newest_first:
        if taken >= count:
            return
        period = _period(rule, backup.finished.astimezone(zone))
        if period != last:
            taken += 1
            last = period
            keep(backup, f"newest of {period} ({rule} {taken} of {count})")


def _period(rule: str, local: datetime) -> str:
    if rule == "hourly":
        return f"{local:%Y-%m-%d %H}:00"
    if rule == "daily":
        return f"{local:%Y-%m-%d}"
    if rule == "weekly":
        year, week, _ = local.isocalendar()
        return f"week {year}-W{week:02d}"
    if rule == "monthly":
        return f"{local:%Y-%m}"
    return f"{local:%Y}"


def _window(seconds: float, newest_first: Sequence[GoodBackup], now: datetime,
            keep: Callable[[GoodBackup, str], None]) -> None:
    """Keep what restores to any point since `now - seconds`: the newest self-contained backup
    finished at or before then, and everything after it."""
    start = now - timedelta(seconds=seconds)
    name = window_words(seconds)
    anchor = next((backup for backup in newest_first
                   if backup.finished <= start and backup.depends_on is None), None)
    for backup in newest_first:
        if backup.finished > start:
            keep(backup, f"inside the {name} recovery window")
        elif backup is anchor:
            keep(backup, f"restores to the start of the {name} recovery window")
            return
        elif anchor is not None:
            keep(backup, f"needed to restore to points in the {name} recovery window")


def _chains(newest_first: Sequence[GoodBackup], by_id: dict[str, GoodBackup],
            reasons: dict[str, list[str]]) -> None:
    """Every kept backup keeps the backups it depends on, back to the one that restores alone."""
    for backup in newest_first:
        child = backup
        while reasons[child.id] and child.depends_on is not None:
            parent = by_id[child.depends_on]
            because = f"a kept {KIND_WORDS[child.kind]} ({child.id}) depends on it"
            if because in reasons[parent.id]:
                break
            reasons[parent.id].append(because)
            child = parent


def _safe_order(drops: Sequence[GoodBackup]) -> tuple[GoodBackup, ...]:
    """`drops` (newest first) ordered so that each comes after every backup depending on it."""
    children: dict[str, list[GoodBackup]] = {}
    for backup in drops:
        if backup.depends_on is not None:
            children.setdefault(backup.depends_on, []).append(backup)
    done: set[str] = set()
    ordered: list[GoodBackup] = []

    def visit(backup: GoodBackup) -> None:
        if backup.id in done:
            return
        done.add(backup.id)
        for child in children.get(backup.id, []):
            visit(child)
        ordered.append(backup)

    for backup in drops:
        visit(backup)
    return tuple(ordered)


def _checked(backups: list[GoodBackup], now: datetime) -> list[GoodBackup]:
    """The backups newest first (ties by id); ValueError for what makes a plan unsafe."""
    _utc(now, "now")
    seen: set[str] = set()
    for backup in backups:
        if backup.id in seen:
            raise ValueError(f"backup {backup.id} is given twice: each backup needs its own id")
        seen.add(backup.id)
        _utc(backup.finished, f"backup {backup.id}'s finish time")
    by_id = {backup.id: backup for backup in backups}
    for backup in backups:
        chain, current = [backup.id], backup
        while current.depends_on is not None:
            if current.depends_on not in by_id:
                raise ValueError(f"backup {current.id} depends on {current.depends_on}, which is not among "
                                 f"the good backups given: its chain is broken, so nothing is planned")
            if current.depends_on in chain:
                raise ValueError(f"backups {' -> '.join([*chain, current.depends_on])} depend on each "
                                 f"other in a loop")
            chain.append(current.depends_on)
            current = by_id[current.depends_on]
    return sorted(backups, key=lambda b: (b.finished, b.id), reverse=True)


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} ({moment.isoformat()}) has no UTC offset: give it with one, e.g. "
                         f"{moment.isoformat()}+00:00")
    return moment.astimezone(UTC)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin "
                         "or UTC") from None
