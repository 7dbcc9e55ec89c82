"""Times and durations as people read and write them on the command line and in reports."""

from __future__ import annotations

from datetime import UTC, datetime


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


def parse_time(text: str) -> datetime:
    """An ISO 8601 time ('2026-11-24T02:00:00Z', '2026-11-24 02:00+01:00'); UTC when it gives
    no offset. ValueError names the expected form."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r}: give an ISO 8601 time such as "
                         "2026-11-24T02:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
