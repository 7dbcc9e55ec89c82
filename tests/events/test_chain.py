"""The hash chain as pure functions: an event's hash covers every field and its predecessor,
reads back the same whatever the store did to its JSON, and the walk names the event that
was changed, the events that are missing and those inserted."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from opsplane.events.chain import (
    GENESIS,
    Anchor,
    Row,
    canonical_ts,
    details_from_text,
    plain,
    stored_ts,
    walk,
)

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def chain_of(count: int, *, start: Anchor = Anchor()) -> list[Row]:
    rows, prev = [], start.hash
    for n in range(start.id + 1, start.id + count + 1):
        row = Row(n, canonical_ts(T0 + timedelta(seconds=n)), "check.state_changed", "opsplane", f"web:{n}",
                  "web", "CRITICAL", {"reason": "refused", "n": n}, prev, None)
        row = replace(row, hash=row.computed())
        rows.append(row)
        prev = row.hash
    return rows


def test_every_field_and_the_predecessor_change_the_hash() -> None:
    row = chain_of(1)[0]
    variants = [replace(row, id=9), replace(row, ts=canonical_ts(T0)), replace(row, kind="x"),
                replace(row, actor="x"), replace(row, target="x"), replace(row, service=None),
                replace(row, outcome="OK"), replace(row, details={"reason": "refused", "n": 2}),
                replace(row, prev_hash="1" * 64)]
    hashes = {v.computed() for v in variants}
    assert row.computed() not in hashes and len(hashes) == len(variants)


def test_details_hash_as_the_store_gives_them_back() -> None:
    # SQLite returns json.loads(json.dumps(x)); PostgreSQL's JSONB writes 1e16 out in full.
    given = {"t": (1, 2.0), 3: "key", "big": 1e16, "small": 1e-05, "ok": True, "none": None}
    assert plain(given) == details_from_text(json.dumps(given))
    assert plain(given) == details_from_text(json.dumps(given).replace("1e+16", "10000000000000000"))
    assert plain({"f": 1.5}) != plain({"f": 1})


def test_times_are_canonical_from_any_zone_and_from_sqlite_text() -> None:
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    assert canonical_ts(berlin) == canonical_ts(T0) == "2026-12-06T12:00:00.000000Z"
    assert stored_ts("2026-12-06 12:00:00.000000") == canonical_ts(T0)
    with pytest.raises(ValueError, match="naive"):
        canonical_ts(datetime(2026, 12, 6))


def test_an_intact_chain_walks_clean_to_its_head() -> None:
    rows = chain_of(5)
    found = walk(rows, head=Anchor(5, rows[-1].hash or ""))
    assert found.intact and found.checked == 5 and found.first == Anchor(1, rows[0].hash or "")


def test_a_changed_event_is_named() -> None:
    rows = chain_of(5)
    rows[2] = replace(rows[2], actor="mallory")
    found = walk(rows, head=Anchor(5, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(3, "changed")]


def test_a_deleted_event_is_named_as_missing() -> None:
    rows = chain_of(5)
    del rows[2]
    found = walk(rows, head=Anchor(5, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(4, "missing")]
    assert "event 3 is missing" in found.problems[0].what


def test_events_deleted_from_either_end_are_missing() -> None:
    rows = chain_of(5)
    found = walk(rows[2:], head=Anchor(5, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(3, "missing")]
    found = walk(rows[:3], head=Anchor(5, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(5, "missing")]
    assert "events 4 to 5 are missing" in found.problems[0].what


def test_an_inserted_event_is_named() -> None:
    rows = chain_of(5)
    forged = Row(6, canonical_ts(T0), "token.created", "mallory", "admin", None, "ok", {}, rows[-1].hash,
                 None)
    forged = replace(forged, hash=forged.computed())
    # the next event opsplane writes links to the head (event 5), past the forged one
    after = Row(7, canonical_ts(T0), "check.state_changed", "opsplane", "web", "web", "OK", {}, rows[-1].hash,
                None)
    after = replace(after, hash=after.computed())
    found = walk([*rows, forged, after], head=Anchor(7, after.hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(6, "inserted")]
    unhashed = replace(forged, prev_hash=None, hash=None)
    found = walk([*rows, unhashed, after], head=Anchor(7, after.hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(6, "inserted")]


def test_a_rehashed_event_breaks_the_link_after_it() -> None:
    rows = chain_of(5)
    rewritten = replace(rows[1], outcome="OK")
    rows[1] = replace(rewritten, hash=rewritten.computed())
    found = walk(rows, head=Anchor(5, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(3, "missing")]
    assert "event 2 was rewritten" in found.problems[0].what


def test_a_walk_from_a_checkpoint() -> None:
    rows = chain_of(10)
    checkpoint = Anchor(4, rows[3].hash or "")
    assert walk(rows[4:], start=checkpoint, head=Anchor(10, rows[-1].hash or "")).intact
    found = walk(rows[5:], start=checkpoint, head=Anchor(10, rows[-1].hash or ""))
    assert [(p.event_id, p.wrong) for p in found.problems] == [(6, "missing")]
    assert walk([], start=Anchor(10, rows[-1].hash or ""), head=Anchor(10, rows[-1].hash or "")).intact
    assert GENESIS == "0" * 64
