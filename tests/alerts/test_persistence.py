"""Alert states survive a restart in every state, on SQLite and PostgreSQL: the restarted
evaluator neither loses a firing alert, nor fires it again, nor restarts a pending `for`,
though a cycle writes only the alerts that changed."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from opsplane.alerts import service
from opsplane.alerts.flows import Alerting
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Alert, AlertState, Sample
from opsplane.clock import ManualClock
from opsplane.events import service as events
from opsplane.store import Store
from tests.alerts.factories import T0

ORDERS = {"service": "orders", "env": "production"}
ERRORS: dict[str, Any] = {"name": "HighErrorRate", "expr": "errors > 0", "severity": "P1", "for": "1m",
                          "annotations": {"summary": "{{ $value }}"}}


class ControlPlaneLike:
    """The control plane's alerting cycle over a store; a new instance over the same store is
    a restart."""

    def __init__(self, store: Store, clock: ManualClock, **rule: Any) -> None:
        settings = AlertingSettings.model_validate({"rules": [{**ERRORS, **rule}],
                                                    "builtin_rules": {"enabled": False},
                                                    "route": {"receiver": "default", "group_wait": "0s"}})
        self.samples: Sequence[Sample] = []
        self.alerting = Alerting(settings, store=store, evaluate=lambda expr, at: self.samples, clock=clock)
        self.sent = 0

    @property
    def alerts(self) -> list[Alert]:
        return self.alerting.alerts

    def cycle(self, samples: Sequence[Sample]) -> list[tuple[str, str]]:
        self.samples = list(samples)
        report = self.alerting.run_once()
        self.sent += len(report.sent)
        return [(t.before.value, t.after.value) for t in report.evaluation.transitions]


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


def test_restart_while_resolved_keeps_the_resolution_until_it_is_sent(store: Store) -> None:
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
    assert restarted.cycle([]) == [] and restarted.sent == 1  # the resolution, then forgotten
    assert _state(store) == [AlertState.RESOLVED]
    clock.advance(15)
    restarted.cycle([])
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
        found = [e.as_dict() for e in events.get_all(session, kind="alert.*") if e.kind != "alert.notified"]
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


@contextmanager
def rows_written(store: Store) -> Iterator[list[str]]:
    """The statements that write alert states while the block runs, one entry per row."""
    written: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if "alert_states" in statement and verb in ("INSERT", "UPDATE", "DELETE"):
            written.extend([verb] * (len(parameters) if executemany else 1))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield written
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def _many(count: int, value: float = 0.05) -> list[Sample]:
    return [({"service": f"svc-{i}", "env": "production"}, value) for i in range(count)]


def test_steady_firing_alerts_are_not_written_again(store: Store) -> None:
    clock = ManualClock(T0)
    plane = ControlPlaneLike(store, clock, unit="ratio")
    with rows_written(store) as first:
        plane.cycle(_many(100))
    assert first == ["INSERT"] * 100  # new alerts: written, in one statement per kind of write
    clock.advance(60)
    with rows_written(store) as firing:
        assert plane.cycle(_many(100)) == [("pending", "firing")] * 100
    assert firing == ["UPDATE"] * 100
    for _ in range(8):
        clock.advance(15)
        with rows_written(store) as steady:
            plane.cycle(_many(100, 0.0500001))  # the same 5% for whoever reads it
        assert steady == []
    with store.session() as session:
        assert {a.state for a in service.get_all(session)} == {AlertState.FIRING}


def test_a_change_of_state_writes_that_alert_alone(store: Store) -> None:
    clock = ManualClock(T0)
    plane = ControlPlaneLike(store, clock)
    plane.cycle(_many(50))
    clock.advance(60)
    plane.cycle(_many(50))
    clock.advance(15)
    with rows_written(store) as written:
        assert plane.cycle(_many(50)[1:]) == [("firing", "resolved")]
    assert written == ["UPDATE"]
    clock.advance(5 * 60)
    plane.cycle(_many(50)[1:])  # its resolution is sent
    clock.advance(10 * 60)
    with rows_written(store) as forgotten:
        plane.cycle(_many(50)[1:])
    assert forgotten == ["DELETE"]  # the resolved alert, after its retention


def test_a_value_change_is_written_once_it_shows_and_at_most_once_a_minute(store: Store) -> None:
    clock = ManualClock(T0)
    plane = ControlPlaneLike(store, clock, unit="ratio", **{"for": None})
    plane.cycle([(ORDERS, 0.05)])

    def stored() -> tuple[float, dict[str, str]]:
        with store.session() as session:
            (alert,) = service.get_all(session)
        return alert.value, dict(alert.annotations)

    clock.advance(15)
    with rows_written(store) as soon:
        plane.cycle([(ORDERS, 0.07)])
    assert soon == [] and stored() == (0.05, {"summary": "5%"})
    clock.advance(45)
    with rows_written(store) as later:
        plane.cycle([(ORDERS, 0.07)])
    assert later == ["UPDATE"] and stored() == (0.07, {"summary": "7%"})
    assert plane.alerts[0].value == 0.07


def test_a_restart_resumes_from_the_store_whatever_was_not_written(store: Store) -> None:
    clock = ManualClock(T0)
    first = ControlPlaneLike(store, clock)
    first.cycle([(ORDERS, 0.05)])
    clock.advance(60)
    first.cycle([(ORDERS, 0.05)])
    assert first.sent == 1
    clock.advance(15)
    first.cycle([(ORDERS, 0.0600001)])  # a value not written yet
    restarted = ControlPlaneLike(store, clock)
    clock.advance(15)
    assert restarted.cycle([(ORDERS, 0.06)]) == []
    assert restarted.sent == 0  # not paged a second time
    (alert,) = restarted.alerts
    assert alert.fired_at == T0.replace(minute=1) and alert.value == 0.06


def test_a_restart_keeps_the_time_keep_firing_for_counts_from(store: Store) -> None:
    clock = ManualClock(T0)
    first = ControlPlaneLike(store, clock, keep_firing_for="1m", **{"for": None})
    first.cycle([(ORDERS, 0.05)])
    clock.advance(15)
    assert first.cycle([]) == []  # held firing from now
    clock.advance(30)
    restarted = ControlPlaneLike(store, clock, keep_firing_for="1m", **{"for": None})
    assert restarted.cycle([]) == []
    clock.advance(15)
    assert restarted.cycle([]) == []
    clock.advance(15)
    assert restarted.cycle([]) == [("firing", "resolved")]  # one minute after the series went
