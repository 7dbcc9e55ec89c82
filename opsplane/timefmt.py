"""Times and durations as people read and write them on the command line and in reports."""

from __future__ import annotations

from datetime import UTC, datetime

# The times opsplane reads: from the Unix epoch to the end of year 8999. Wide enough for any
# record and any plan, and far enough from datetime's end (9999) that adding a delay, a
# reminder or a few years of shifts to one never overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def span(seconds: float) -> str:
    """A duration as people write it: 45s, 12m 05s, 12m, 2h 05m, 3d 4h (to the second)."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def span_words(seconds: float) -> str:
    """A duration in words, for pages: '45 s', '12 min', '3 h 12 min', '4 days 6 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time ('2026-11-24T02:00:00Z', '2026-11-24 02:00+01:00'); UTC when it gives
    no offset. ValueError names the expected form, or the range for a time outside
    EARLIEST..LATEST."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r}: give an ISO 8601 time such as "
                         "2026-11-24T02:00:00Z") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        inside = EARLIEST <= when.astimezone(UTC) < LATEST
    except OverflowError:  # an offset that moves it past datetime's range
        inside = False
    if not inside:
        raise ValueError(f"{text!r} is outside the times opsplane reads (1970 to the end of 8999)")
    return when
