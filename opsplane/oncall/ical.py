"""The on-call shifts as an iCalendar file (RFC 5545) that calendar apps subscribe to.

One VEVENT per shift, times in UTC so no VTIMEZONE is needed, and a UID made of schedule,
layer and start, so a re-exported calendar updates the same events instead of adding copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from opsplane.oncall.models import OncallSettings
from opsplane.oncall.rotation import Shift

_LIMIT = 75  # octets per line, CRLF excluded (RFC 5545 section 3.1)


def calendar(shifts: Sequence[Shift], settings: OncallSettings, *, stamp: datetime) -> str:
    """The shifts as one VCALENDAR; `stamp` is the DTSTAMP of every event (when it was made)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//opsplane//on-call//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:On call",
    ]
    for shift in shifts:
        lines.extend(_event(shift, settings, stamp))
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def _event(shift: Shift, settings: OncallSettings, stamp: datetime) -> list[str]:
    name = settings.display_name(shift.person)
    person = settings.people.get(shift.person)
    contacts = [f"{kind}: {address}" for kind, address in (person.contact.items() if person else ())]
    description = "\n".join([f"{name} is {shift.layer} on call for {shift.schedule}.",
                             *contacts, f"Source: {shift.source}."])
    return [
        "BEGIN:VEVENT",
        f"UID:{shift.schedule}.{shift.layer}.{_utc(shift.start)}@opsplane",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(shift.start)}",
        f"DTEND:{_utc(shift.end)}",
        f"SUMMARY:{escape(f'On call ({shift.schedule} {shift.layer}): {name}')}",
        f"DESCRIPTION:{escape(description)}",
        "CATEGORIES:on-call",
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
    ]


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def escape(text: str) -> str:
    """A TEXT value with backslash, semicolon, comma and newline escaped."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """`line` split into lines of at most 75 octets, each continuation starting with a space,
    never inside a UTF-8 character."""
    parts: list[str] = []
    current, size, limit = "", 0, _LIMIT
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append(current)
            current, size, limit = "", 0, _LIMIT - 1  # the leading space counts
        current += char
        size += width
    parts.append(current)
    return "\r\n ".join(parts)
