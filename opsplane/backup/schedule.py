"""When backups, verifications and restore drills run: cron expressions in a time zone.

A schedule is written as cron writes it, five fields (minute hour day-of-month month
day-of-week, e.g. '0 3 * * 0') or one of @hourly, @daily (@midnight), @weekly, @monthly,
@yearly (@annually). `parse_cron` reads one and says what is wrong with one it cannot read;
`CronSchedule.next_after` and `previous_at_or_before` give fire times as UTC instants, and
`due` says whether a run is due now. Times are passed in; nothing here reads a clock.

Fire times are wall-clock times in the schedule's IANA time zone and follow its daylight-saving
changes the way Debian's cron (Vixie cron) does, for schedules at a fixed minute and hour
('30 2 * * *', '0 1,13 * * *'): a time the spring change skips fires once, at the first
instant after the gap (02:30 in Europe/Berlin on the last Sunday of March fires at 03:00
CEST); a time the autumn change repeats fires once, at its first occurrence (02:30 CEST, not
again at 02:30 CET). Schedules with a '*' in the minute or hour field ('*/15 * * * *',
'0 * * * *') fire at every wall-clock match as it comes, so an hourly one fires in both
copies of the repeated hour and not in the skipped one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# cronsim rather than croniter: it has no dependencies, is small enough to read, and is written
# to match Debian cron, including its handling of daylight-saving changes (which
# tests/backup/test_schedule.py holds it to); croniter needs python-dateutil and fires a
# fixed-time job in both copies of the repeated autumn hour (7.0 runs '30 2 * * *' twice on
# 25 October 2026 in Europe/Berlin). cronsim also explains an expression in words.
from cronsim import CronSim, CronSimError

NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {
    "minute": "0-59, e.g. 0, 30, */15 or 0,30",
    "hour": "0-23, e.g. 3, 1-5 or */6",
    "day-of-month": "1-31, e.g. 1, 15 or 1,15",
    "month": "1-12 or JAN-DEC, e.g. 1 or */3",
    "day-of-week": "0-7 or SUN-SAT, 0 and 7 both Sunday, e.g. 0, 1-5 or MON-FRI",
}
_FORM = "(minute hour day-of-month month day-of-week)"
_SKIPS = 2000  # fire times handed back before the instant (inside the repeated autumn hour) passed over


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron schedule: `expression` as it was written, `fields` its five-field form
    ('@daily' is '0 0 * * *'). Build one with `parse_cron`."""

    expression: str
    fields: str

    def next_after(self, instant: datetime, tz: str | tzinfo) -> datetime:
        """The first fire time strictly after `instant` (an aware datetime), as an aware UTC
        datetime; `tz` is the zone whose wall clock the schedule follows (an IANA name or a
        tzinfo). ValueError when it does not fire in the 50 years after `instant`."""
        zone, at = _zone(tz), _utc(instant)
        fires = CronSim(self.fields, at.astimezone(zone))
        for _ in range(_SKIPS):
            fire = _next(fires, self, at).astimezone(UTC)
            if fire > at:  # started inside the repeated hour, cron can hand back its first copy
                return fire
        raise ValueError(f"{self.expression!r} finds no fire time after {at.isoformat()}")

    def previous_at_or_before(self, instant: datetime, tz: str | tzinfo) -> datetime:
        """The most recent fire time at or before `instant`, as an aware UTC datetime: a run
        that started before it has missed it. ValueError when it did not fire in the 50 years
        before `instant`."""
        zone, at = _zone(tz), _utc(instant)
        floor = at.replace(microsecond=0)
        fires = CronSim(self.fields, (floor + timedelta(seconds=1)).astimezone(zone), reverse=True)
        candidate = _next(fires, self, at).astimezone(UTC)
        for _ in range(_SKIPS):
            if candidate <= at:
                break
            candidate = _next(fires, self, at).astimezone(UTC)
        # Going back on the wall clock from inside the repeated autumn hour skips the fire
        # times of its first copy; going forward from the candidate finds them again.
        for _ in range(_SKIPS):
            later = self.next_after(candidate, zone)
            if later > at:
                return candidate
            candidate = later
        raise ValueError(f"{self.expression!r} finds no fire time before {at.isoformat()}")

    def describe(self, tz: str | tzinfo | None = None) -> str:
        """The schedule in words: 'At 03:00 on Sunday (Europe/Berlin)'."""
        try:
            words = CronSim(self.fields, datetime(2000, 1, 1)).explain()
        except Exception:  # explain() is best effort; the expression itself always says it
            words = f"cron {self.fields}"
        return f"{words} ({_zone_name(tz)})" if tz is not None else words

    def __str__(self) -> str:
        return self.expression


def parse_cron(text: object) -> CronSchedule:
    """The schedule `text` writes; ValueError saying what is wrong and what is expected when
    it is not a five-field cron expression or a nickname such as @daily."""
    if not isinstance(text, str):
        raise ValueError(f"expected a cron schedule such as '0 3 * * 0' {_FORM} or @daily, got {text!r}")
    written = " ".join(text.split())
    if written.startswith("@"):
        fields = NICKNAMES.get(written.lower())
        if fields is None:
            names = ", ".join(NICKNAMES)
            raise ValueError(f"unknown cron nickname {written!r}: use one of {names}, or five fields "
                             f"such as '0 3 * * 0'")
        return CronSchedule(written, fields)
    parts = written.split(" ") if written else []
    if len(parts) != 5:
        seconds = " (a seconds field is not supported)" if len(parts) == 6 else ""
        raise ValueError(f"expected 5 fields such as '0 3 * * 0' {_FORM}, got {len(parts)} in "
                         f"{text!r}{seconds}")
    for name, part in zip(FIELDS, parts, strict=True):
        _check_field(name, part, written)
    try:
        fires = CronSim(written, datetime(2000, 1, 1))
    except CronSimError:  # each field is valid alone: the days it names never occur in its months
        raise ValueError(f"{written!r} never fires: day-of-month {parts[2]!r} does not occur in month "
                         f"{parts[3]!r}") from None
    try:
        next(fires)
    except StopIteration:
        raise ValueError(f"{written!r} never fires: no date matches its day-of-month, month and "
                         f"day-of-week together") from None
    return CronSchedule(written, written)


def due(schedule: CronSchedule, tz: str | tzinfo, last_started: datetime | None, now: datetime) -> bool:
    """Whether a run is due at `now`: it never ran (`last_started` None: the first run is due at
    once rather than at the next fire time), or the last run started before the schedule's most
    recent fire time. A run that started at a fire time itself covers it."""
    if last_started is None:
        return True
    return _utc(last_started) < schedule.previous_at_or_before(now, tz)


def next_due(schedule: CronSchedule, tz: str | tzinfo, last_started: datetime | None,
             now: datetime) -> datetime:
    """When the next run is due, as an aware UTC datetime: `now` when it never ran, the fire
    time it missed (at or before `now`) when it is due, else the next fire time after `now`."""
    at = _utc(now)
    if last_started is None:
        return at
    previous = schedule.previous_at_or_before(at, tz)
    if _utc(last_started) < previous:
        return previous
    return schedule.next_after(at, tz)


def _check_field(name: str, part: str, written: str) -> None:
    """A field cronsim would reject, named with what it may hold."""
    try:
        CronSim(" ".join(part if field == name else "*" for field in FIELDS), datetime(2000, 1, 1))
    except CronSimError:
        raise ValueError(f"{written!r} is not a cron schedule: the {name} field {part!r} is not valid "
                         f"({_RANGES[name]})") from None


def _next(fires: CronSim, schedule: CronSchedule, at: datetime) -> datetime:
    try:
        return next(fires)
    except StopIteration:
        raise ValueError(f"{schedule.expression!r} does not fire within 50 years of "
                         f"{at.isoformat()}") from None


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no UTC offset: give the instant with one, e.g. "
                         f"{instant.isoformat()}+00:00")
    return instant.astimezone(UTC)


def _zone(tz: str | tzinfo) -> tzinfo:
    if not isinstance(tz, str):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as Europe/Berlin or UTC") from None


def _zone_name(tz: str | tzinfo) -> str:
    if isinstance(tz, str):
        return tz
    return getattr(tz, "key", None) or str(tz)
