"""The iCalendar export, read back with a real parser (icalendar): one event per shift, UTC
times, stable UIDs, CRLF line endings and lines folded at 75 octets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar

from opsplane.oncall import ical
from opsplane.oncall.rotation import Override, Roster
from tests.oncall.factories import PEOPLE, T0, oncall_settings


def _export(**changes: object) -> tuple[str, list]:
    settings = oncall_settings(**changes)
    roster = Roster(settings, [Override("platform", "primary", "dan", T0, T0 + timedelta(hours=8))])
    shifts = [s for layer in ("primary", "secondary")
              for s in roster.shifts("platform", layer, T0, T0 + timedelta(weeks=4))]
    return ical.calendar(shifts, settings, stamp=T0), shifts


def test_every_shift_is_one_event_with_its_utc_times_and_person() -> None:
    text, shifts = _export()
    parsed = icalendar.Calendar.from_ical(text)
    found = parsed.walk("VEVENT")
    # primary: dan's 8 hours, the rest of ana's week, then 4 more weeks; secondary: 5 weeks
    assert len(found) == len(shifts) == 11
    by_uid = {str(e["UID"]): e for e in found}
    assert len(by_uid) == len(found)
    rest = by_uid["platform.primary.20260304T180000Z@opsplane"]
    assert rest.decoded("DTSTART") == T0 + timedelta(hours=8)
    assert rest.decoded("DTEND") == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
    assert str(rest["SUMMARY"]) == "On call (platform primary): Ana Silva"
    override = by_uid["platform.primary.20260304T100000Z@opsplane"]
    assert str(override["SUMMARY"]).endswith(": dan")
    assert "Source: override." in str(override["DESCRIPTION"])
    assert all(e.decoded("DTSTART").utcoffset() == timedelta(0) for e in found)


def test_lines_end_in_crlf_and_are_folded_at_75_octets_without_splitting_a_character() -> None:
    long_name = "Ana Conceição Gonçalves de Araújo " * 3
    people = {**PEOPLE, "ana": {**PEOPLE["ana"], "name": long_name}}
    text, _ = _export(people=people)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert max(len(line.encode()) for line in lines) <= 75
    assert any(line.startswith(" ") for line in lines)
    summary = next(e for e in icalendar.Calendar.from_ical(text).walk("VEVENT")
                   if "Ana Conceição" in str(e["SUMMARY"]))
    assert str(summary["SUMMARY"]) == f"On call (platform primary): {long_name}"


def test_text_values_escape_commas_semicolons_and_backslashes() -> None:
    assert ical.escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    people = {**PEOPLE, "ana": {**PEOPLE["ana"], "name": "Silva, Ana; on call"}}
    text, _ = _export(people=people)
    events = icalendar.Calendar.from_ical(text).walk("VEVENT")
    assert "On call (platform primary): Silva, Ana; on call" in {str(e["SUMMARY"]) for e in events}


def test_the_same_shifts_exported_twice_keep_their_uids() -> None:
    first, _ = _export()
    again, _ = _export()
    uids = [str(e["UID"]) for e in icalendar.Calendar.from_ical(first).walk("VEVENT")]
    assert uids == [str(e["UID"]) for e in icalendar.Calendar.from_ical(again).walk("VEVENT")]
