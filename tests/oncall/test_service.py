"""Overrides, swaps and handoff notes recorded in the event log and read back by the schedules,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsplane.clock import ManualClock
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.oncall import service
from opsplane.store import Store
from tests.oncall.factories import T0, oncall_settings

HOUR = timedelta(hours=1)


def test_a_recorded_override_is_an_event_with_its_actor_and_the_schedule_reads_it_back(store: Store) -> None:
    settings = oncall_settings()
    with store.session() as session:
        service.record_override(session, settings=settings, schedule="platform", layer="primary",
                                person="dan", start=T0, end=T0 + 8 * HOUR, actor="cli:ben",
                                clock=ManualClock(T0))
    with store.session() as session:
        [event] = events.get_all(session, kind="oncall.override")
        roster = service.get_roster(session, settings=settings)
    assert (event.actor, event.target, event.details["person"]) == ("cli:ben", "platform/primary", "dan")
    assert roster.on_call("platform", "primary", T0 + HOUR).person == "dan"
    assert roster.on_call("platform", "primary", T0 + 8 * HOUR).person == "ana"


def test_the_later_of_two_recorded_changes_wins(store: Store) -> None:
    settings = oncall_settings()
    with store.session() as session:
        service.record_swap(session, settings=settings, schedule="platform", layer="primary",
                            first=T0, second=T0 + timedelta(weeks=1), actor="cli:ana")
        service.record_override(session, settings=settings, schedule="platform", layer="primary",
                                person="cleo", start=T0, end=T0 + HOUR, actor="cli:ana")
    with store.session() as session:
        roster = service.get_roster(session, settings=settings)
    assert roster.on_call("platform", "primary", T0).person == "cleo"
    assert roster.on_call("platform", "primary", T0 + 2 * HOUR).person == "ben"  # the swap
    assert roster.on_call("platform", "primary", T0 + timedelta(weeks=1)).person == "ana"


def test_a_handoff_note_keeps_who_was_on_call_and_the_newest_comes_first(store: Store) -> None:
    settings = oncall_settings()
    clock = ManualClock(T0)
    with store.session() as session:
        service.record_handoff(session, settings=settings, schedule="platform", note="db-2 disk at 70%",
                               actor="cli:ana", clock=clock)
        clock.advance(7 * 86400)
        service.record_handoff(session, settings=settings, schedule="platform", note="quiet week",
                               actor="cli:ben", clock=clock)
    with store.session() as session:
        notes = service.get_handoffs(session, schedule="platform")
    assert [(n.note, n.actor, n.on_call["primary"]) for n in notes] == [
        ("quiet week", "cli:ben", "ben"), ("db-2 disk at 70%", "cli:ana", "ana")]
    assert notes[1].at == T0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schedule": "payments"}, "unknown schedule 'payments'; schedules: platform"),
        ({"layer": "tertiary"}, "schedule 'platform' has no layer 'tertiary'; it has primary, secondary"),
        ({"person": "zoe"}, "unknown person 'zoe'"),
        ({"end": T0 - HOUR}, "an override must end after it starts"),
    ],
)
def test_an_override_naming_what_is_not_there_is_refused_and_not_recorded(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    fields: dict[str, Any] = {"schedule": "platform", "layer": "primary", "person": "dan", "start": T0,
                    "end": T0 + HOUR, **changes}
    with pytest.raises(UsageError, match=message), store.session() as session:
        service.record_override(session, settings=oncall_settings(), actor="cli:ana", **fields)
    with store.session() as session:
        assert service.get_changes(session) == []
    store.close()


def test_a_swap_within_one_shift_is_refused(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    with pytest.raises(UsageError, match="same shift"), store.session() as session:
        service.record_swap(session, settings=oncall_settings(), schedule="platform", layer="primary",
                            first=T0, second=T0 + HOUR, actor="cli:ana")
    store.close()
