"""Values fitted to their columns, by the lengths the tables themselves declare, and written
to a real PostgreSQL, which refuses a text longer than its column."""

from __future__ import annotations

import pytest

from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.incidents.tables import IncidentRow
from opsplane.store import Store
from opsplane.store.fit import MARK, fit, fit_key, fit_text


def test_text_longer_than_its_column_is_cut_and_marked() -> None:
    values = fit(Event, {"service": "s" * 150, "target": "short", "details": {"x": "y" * 1000}})
    assert values["service"] == "s" * 99 + MARK
    assert values["target"] == "short" and values["details"] == {"x": "y" * 1000}
    assert fit_text(Event.service, "s" * 100) == "s" * 100


def test_a_cut_key_keeps_long_values_apart_and_the_same_value_the_same() -> None:
    first, second = "k" * 400 + "1", "k" * 400 + "2"
    assert len(fit_key(IncidentRow.group_key, first)) == 300
    assert fit_key(IncidentRow.group_key, first) != fit_key(IncidentRow.group_key, second)
    assert fit_key(IncidentRow.group_key, first) == fit_key(IncidentRow.group_key, first)
    assert fit_key(IncidentRow.group_key, "short") == "short"


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_an_event_with_long_texts_is_recorded(store: Store) -> None:
    with store.session() as session:
        events.record(session, kind="alert.firing", actor="alerting", target="T" * 500,
                      service="s" * 150, outcome="firing", details={"service": "s" * 150})
    with store.session() as session:
        [event] = events.get_all(session)
    assert event.service == "s" * 99 + MARK and len(event.target) == 300
    assert event.details == {"service": "s" * 150}
