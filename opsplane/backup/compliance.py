"""Whether one component's copies meet 3-2-1 and its RPO, and whether a restore time is possible.

`assess` counts the copies of a component's data the 3-2-1 rule asks for (three copies, on two
media, one of them offsite): the live data is one copy on the platform's own medium (disk), and
each repository holding a good backup is another, on its medium (disk for a directory,
object-store for a bucket). A repository's copy counts however old it is: 3-2-1 says where
copies are; how old the newest is, is the separate `Freshness` verdict against the RPO. A
repository that archives continuously (PostgreSQL's WAL) can restore to its newest archived
point, so that point, when newer than its newest backup, is what the RPO is measured from.

`recoverable` says whether the data can be restored to a given time from the backups and the
continuous archive, or why not. Times are passed in; nothing here reads a clock or a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

LIVE = "live"
WANTED_COPIES, WANTED_MEDIA, WANTED_OFFSITE = 3, 2, 1


@dataclass(frozen=True)
class RepositoryCopy:
    """The newest good copy of the component in one repository.

    `medium` is "disk" for a directory and "object-store" for a bucket; `finished` is when the
    newest good backup there finished (None: the repository has no good backup);
    `archived_until` is the newest point continuous archiving reaches there (the newest archived
    WAL segment's time; None when nothing is archived continuously)."""

    repository: str
    medium: str
    offsite: bool
    finished: datetime | None
    archived_until: datetime | None = None


@dataclass(frozen=True)
class Freshness:
    """How old one repository's newest recoverable point is against the RPO.

    `newest` is that point (None: nothing to restore there) and `measured` what it is: the
    newest good backup or the continuous archive; `age` and `rpo` are seconds (`age` None when
    there is nothing); `stale` when older than the RPO or absent; `sentence` says it for a person."""

    repository: str
    newest: datetime | None
    measured: Literal["backup", "archive"] | None
    age: float | None
    rpo: float
    stale: bool
    sentence: str


@dataclass(frozen=True)
class Compliance:
    """3-2-1 for one component: the copies (`LIVE` and the repositories with a good backup),
    the media they are on and the offsite ones, a sentence per rule that is not met in
    `violations` (empty: 3-2-1 is met), and each repository's `Freshness`."""

    copies: tuple[str, ...]
    media: tuple[str, ...]
    offsite: tuple[str, ...]
    violations: tuple[str, ...]
    freshness: tuple[Freshness, ...]

    @property
    def meets_321(self) -> bool:
        return not self.violations

    @property
    def stale(self) -> tuple[Freshness, ...]:
        """The repositories whose newest recoverable point is older than the RPO, or absent."""
        return tuple(verdict for verdict in self.freshness if verdict.stale)

    @property
    def fresh(self) -> bool:
        """Some repository holds a recoverable point within the RPO."""
        return any(not verdict.stale for verdict in self.freshness)


@dataclass(frozen=True)
class Recoverability:
    """Whether the data can be restored to the time asked about: `ok`, the `reason` in words,
    and the backup finish time a restore would start from (None when there is none)."""

    ok: bool
    reason: str
    base: datetime | None


def assess(copies: Sequence[RepositoryCopy], *, rpo: float, now: datetime,
           live_medium: str = "disk") -> Compliance:
    """3-2-1 and freshness at `now` (an aware datetime) for one component whose repositories
    hold `copies` and whose RPO is `rpo` seconds; the live data is on `live_medium`."""
    if not rpo > 0:
        raise ValueError(f"an RPO must be a positive number of seconds, got {rpo!r}")
    now = _utc(now, "now")
    names = [copy.repository for copy in copies]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"repository {', '.join(twice)} is given twice: give the newest copy in each once")
    good = [copy for copy in copies if copy.finished is not None]
    held = (LIVE, *(copy.repository for copy in good))
    media = tuple(dict.fromkeys([live_medium, *(copy.medium for copy in good)]))
    offsite = tuple(copy.repository for copy in good if copy.offsite)
    violations: list[str] = []
    if len(held) < WANTED_COPIES:
        violations.append(f"only {_count(len(held), 'copy', 'copies')} ({', '.join(held)}): "
                          f"{WANTED_COPIES} wanted")
    if len(media) < WANTED_MEDIA:
        violations.append(f"all copies on one medium ({media[0]})" if len(media) == 1 else
                          f"copies on only {len(media)} media ({', '.join(media)}): {WANTED_MEDIA} wanted")
    if len(offsite) < WANTED_OFFSITE:
        empty = [copy.repository for copy in copies if copy.offsite and copy.finished is None]
        violations.append(f"no offsite copy: {_listing(empty)} {'has' if len(empty) == 1 else 'have'} no "
                          f"good backup" if empty else "no offsite copy: no repository is offsite")
    freshness = tuple(_freshness(copy, rpo, now) for copy in copies)
    return Compliance(held, media, offsite, tuple(violations), freshness)


def recoverable(at: datetime, backups: Sequence[datetime],
                archive_window: tuple[datetime, datetime] | None = None) -> Recoverability:
    """Whether the data can be restored to exactly `at`: `backups` are the finish times of the
    component's good backups, `archive_window` the oldest and newest points continuous
    archiving can replay between (None: no continuous archive). A restore starts from the
    newest backup finished at or before `at` and, unless `at` is that backup's own time,
    replays the archive from it to `at`."""
    at = _utc(at, "the restore time")
    finished = sorted(_utc(moment, "a backup's finish time") for moment in backups)
    window = None
    if archive_window is not None:
        window = (_utc(archive_window[0], "the archive's start"),
                  _utc(archive_window[1], "the archive's end"))
        if window[1] < window[0]:
            raise ValueError(f"the archive ends ({_when(window[1])}) before it starts ({_when(window[0])})")
    if not finished:
        return Recoverability(False, "there is no good backup to restore from", None)
    if at < finished[0]:
        return Recoverability(False, f"before the oldest backup ({_when(finished[0])})", None)
    newest = max(finished[-1], window[1]) if window else finished[-1]
    if at > newest:
        return Recoverability(False, f"after the newest recoverable point ({_when(newest)})", None)
    base = max(moment for moment in finished if moment <= at)
    if at == base:
        return Recoverability(True, f"the backup finished at {_when(base)} restores to it", base)
    if window is None:
        return Recoverability(False, f"between backups and nothing is archived continuously: the nearest "
                                     f"point before it is the backup finished at {_when(base)}", base)
    if window[0] > base:
        return Recoverability(False, f"the archive starts at {_when(window[0])}, after the backup to "
                                     f"replay it on (finished {_when(base)})", base)
    if at > window[1]:
        return Recoverability(False, f"the archive ends at {_when(window[1])}: the nearest point before "
                                     f"it is the backup finished at {_when(base)}", base)
    return Recoverability(True, f"the backup finished at {_when(base)} and the archive after it "
                                f"restore to it", base)


def duration_words(seconds: float) -> str:
    """A duration for a sentence: '45 s', '1 h', '2 h 5 min', '3 days 4 h'."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        head = f"{days} day{'s' if days != 1 else ''}"
        return f"{head} {hours} h" if hours else head
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def _freshness(copy: RepositoryCopy, rpo: float, now: datetime) -> Freshness:
    limit = f"RPO {duration_words(rpo)}"
    finished = _utc(copy.finished, f"{copy.repository}'s newest backup") if copy.finished else None
    archived = _utc(copy.archived_until, f"{copy.repository}'s archive") if copy.archived_until else None
    if finished is None and archived is None:
        return Freshness(copy.repository, None, None, None, rpo, True,
                         f"no good copy in {copy.repository}, {limit}")
    measured: Literal["backup", "archive"]
    if archived is not None and (finished is None or archived > finished):
        newest, measured, what = archived, "archive", "newest archived point"
    else:
        assert finished is not None
        newest, measured, what = finished, "backup", "newest good copy"
    age = max(0.0, (now - newest).total_seconds())
    return Freshness(copy.repository, newest, measured, age, rpo, age > rpo,
                     f"{what} {duration_words(age)} old, {limit}")


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _listing(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _when(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment.second else f"{moment:%Y-%m-%d %H:%M} UTC"


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} ({moment.isoformat()}) has no UTC offset: give it with one, e.g. "
                         f"{moment.isoformat()}+00:00")
    return moment.astimezone(UTC)
