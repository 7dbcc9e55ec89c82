"""Alert states survive a restart in every state, on SQLite and PostgreSQL: the restarted
evaluator neither loses a firing alert, nor fires it again, nor restarts a pending `for`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from opsplane.alerts import service
from opsplane.alerts.state import Alert, AlertState, Sample, evaluate_rules
from opsplane.clock import ManualClock
from opsplane.events import service as events
from opsplane.store import Store
from tests.alerts.factories import T0, rule

ORDERS = {"service": "orders", "env": "production"}
ERRORS = rule("HighErrorRate", **{"for": "1m"}, annotations={"summary": "{{ $value }}"})


class ControlPlaneLike:
    """Evaluates, saves and records each cycle the way the control plane does; a new
    instance over the same store is a restart."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.store, self.clock = store, clock
        with store.session() as session:
            self.alerts: list[Alert] = service.get_all(session)

    def cycle(self, samples: Sequence[Sample]) -> list[tuple[str, str]]:
        now = self.clock.now()
        result = evaluate_rules([ERRORS], lambda expr, at: samples, self.alerts, now)
        with self.store.session() as session:
            service.save_all(session, alerts=result.alerts, dropped=result.dropped)
            service.record_transitions(session, transitions=result.transitions, at=now)
        self.alerts = result.alerts
        return [(t.before.value, t.after.value) for t in result.transitions]


def _state(store: Store) -> list[AlertState]:
    with store.session() as session:
        return [a.state for a in service.get_all(session)]


def test_restart_while_pending_keeps_counting_for_from_the_first_activation(store: Store) -> None:
    clock = ManualClock(T0)
    ControlPlaneLike(store, clock).cycle([(ORDERS, 0.05)])
    clock.advance(60)
    restarted = ControlPlaneLike(store, clock)
    assert restarted.cycle([(ORDERS, 0.05)]) == [("pending", "firing")]
    assert _state(store) == [AlertState.FIRING]


def test_restart_while_firing_neither_loses_nor_refires_the_alert(store: Store) -> None:
    clock = ManualClock(T0)
    first = ControlPlaneLike(store, clock)
    first.cycle([(ORDERS, 0.05)])
    clock.advance(60)
    first.cycle([(ORDERS, 0.05)])
    clock.advance(15)
    restarted = ControlPlaneLike(store, clock)
    assert restarted.cycle([(ORDERS, 0.07)]) == []
    (alert,) = restarted.alerts
    assert alert.fired_at == T0.replace(minute=1) and alert.annotations == {"summary": "0.07"}
    clock.advance(15)
    assert restarted.cycle([]) == [("firing", "resolved")]


def test_restart_while_resolved_keeps_the_resolution_until_retention_ends(store: Store) -> None:
    clock = ManualClock(T0)
    first = ControlPlaneLike(store, clock)
    first.cycle([(ORDERS, 0.05)])
    clock.advance(60)
    first.cycle([(ORDERS, 0.05)])
    clock.advance(15)
    first.cycle([])
    restarted = ControlPlaneLike(store, clock)
    assert [a.state for a in restarted.alerts] == [AlertState.RESOLVED]
    clock.advance(15 * 60)
    assert restarted.cycle([]) == []
    assert _state(store) == []


def test_restart_while_inactive_starts_nothing(store: Store) -> None:
    clock = ManualClock(T0)
    ControlPlaneLike(store, clock).cycle([])
    assert ControlPlaneLike(store, clock).cycle([]) == []
    assert _state(store) == []


def test_a_pending_alert_that_goes_away_is_forgotten_by_the_store(store: Store) -> None:
    clock = ManualClock(T0)
    plane = ControlPlaneLike(store, clock)
    plane.cycle([(ORDERS, 0.05)])
    clock.advance(15)
    assert plane.cycle([]) == [("pending", "inactive")]
    assert _state(store) == []


def test_each_change_of_state_is_one_event_with_labels_and_value(store: Store) -> None:
    clock = ManualClock(T0)
    plane = ControlPlaneLike(store, clock)
    plane.cycle([(ORDERS, 0.05)])
    clock.advance(60)
    plane.cycle([(ORDERS, 0.06)])
    plane.cycle([(ORDERS, 0.06)])
    with store.session() as session:
        found = [e.as_dict() for e in events.get_all(session, kind="alert.*")]
    assert [e["kind"] for e in found] == ["alert.firing", "alert.pending"]
    firing = found[0]
    assert firing["target"] == "HighErrorRate" and firing["service"] == "orders"
    assert firing["details"]["value"] == pytest.approx(0.06)
    assert firing["details"]["labels"]["severity"] == "P1"
    assert firing["details"]["from"] == "pending"


def test_a_nan_value_round_trips(store: Store) -> None:
    clock = ManualClock(T0)
    ControlPlaneLike(store, clock).cycle([(ORDERS, math.nan)])
    (alert,) = ControlPlaneLike(store, clock).alerts
    assert math.isnan(alert.value)
