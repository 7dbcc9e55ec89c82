"""Incidents in a real store (SQLite and PostgreSQL): every change is an event with its actor
and outcome, updates carry the template's fields and the public flag, action items are tracked,
detection is found in the log, and the timeline is the log's events around the incident."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.incidents import service
from opsplane.incidents.lifecycle import TransitionRefused
from opsplane.incidents.models import IncidentsSettings, Status
from opsplane.store import Store
from tests.incidents.factories import minutes

SETTINGS = IncidentsSettings()


def _open(store: Store, **fields: object) -> int:
    data: dict[str, object] = {"title": "Checkout fails", "service": "orders", "severity": "P1",
                               "actor": "cli:ana", "now": minutes(0), "settings": SETTINGS}
    data.update(fields)
    with store.session() as session:
        return service.create(session, **data).id  # type: ignore[arg-type]


def test_the_lifecycle_is_recorded_with_actor_and_outcome(store: Store) -> None:
    number = _open(store)
    with store.session() as session:
        service.acknowledge(session, incident_id=number, actor="token:ben", now=minutes(6))
        service.post_update(session, incident_id=number, status=Status.IDENTIFIED,
                            summary="Payments time out; checkout fails for 30% of users",
                            actions="Rolling back payments 2.4.1", actor="cli:ana", now=minutes(12),
                            settings=SETTINGS, next_update_at=minutes(27), public=True)
        service.resolve(session, incident_id=number, actor="cli:ana", now=minutes(50),
                        settings=SETTINGS, summary="Rolled back; checkout works",
                        root_cause="A connection pool of 5 in payments 2.4.1")
    with store.session() as session:
        row = service.get_or_raise(session, incident_id=number)
        assert (row.status, row.commander, row.participants) == ("resolved", "ben", ["ben", "ana"])
        assert (row.acknowledged_at, row.resolved_at) == (minutes(6), minutes(50))
        assert row.next_update_at is None and row.root_cause.startswith("A connection pool")
        [first, last] = service.get_updates(session, incident_id=number)
        assert (first.status, first.public, first.next_update_at) == ("identified", True, minutes(27))
        assert first.actions == "Rolling back payments 2.4.1" and last.status == "resolved"
        log = list(reversed(events.get_all(session, kind="incident.*")))
    assert [(e.kind, e.actor, e.outcome, e.target) for e in log] == [
        ("incident.opened", "cli:ana", "success", f"INC-{number}"),
        ("incident.acknowledged", "token:ben", "success", f"INC-{number}"),
        ("incident.updated", "cli:ana", "success", f"INC-{number}"),
        ("incident.resolved", "cli:ana", "success", f"INC-{number}"),
    ]
    assert log[1].details["seconds_to_acknowledge"] == 360
    assert log[2].details["public"] is True and log[2].service == "orders"


def test_refused_changes_say_why(store: Store) -> None:
    number = _open(store)
    with store.session() as session:
        service.resolve(session, incident_id=number, actor="cli:ana", now=minutes(5), settings=SETTINGS)
    with store.session() as session, pytest.raises(TransitionRefused, match="resolved"):
        service.acknowledge(session, incident_id=number, actor="cli:ana", now=minutes(6))
    with store.session() as session, pytest.raises(service.NoSuchIncident, match="INC-99"):
        service.acknowledge(session, incident_id=99, actor="cli:ana", now=minutes(6))
    with store.session() as session, pytest.raises(UsageError, match="severity"):
        service.create(session, title="x", service="orders", severity="P9", actor="a", now=minutes(0),
                       settings=SETTINGS)
    other = _open(store)
    with store.session() as session, pytest.raises(UsageError, match="future"):
        service.post_update(session, incident_id=other, status=Status.MONITORING, summary="x",
                            actor="a", now=minutes(10), settings=SETTINGS, next_update_at=minutes(9))


def test_action_items_are_tracked_until_done(store: Store) -> None:
    number = _open(store)
    with store.session() as session:
        item = service.add_action_item(session, incident_id=number, title="Alert on pool saturation",
                                       owner="ben", due=date(2026, 3, 10), actor="cli:ana", now=minutes(60))
        service.add_action_item(session, incident_id=number, title="Load-test releases", owner="ana",
                                due=None, actor="cli:ana", now=minutes(61))
    with store.session() as session:
        assert len(service.get_action_items(session, open_only=True)) == 2
        service.complete_action_item(session, item_id=item.id, actor="cli:ben", now=minutes(90))
    with store.session() as session:
        [left] = service.get_action_items(session, open_only=True)
        assert left.title == "Load-test releases"
        with pytest.raises(UsageError, match="already done"):
            service.complete_action_item(session, item_id=item.id, actor="cli:ben", now=minutes(91))
        assert [e.kind for e in events.get_all(session, kind="incident.action_*")] == [
            "incident.action_done", "incident.action_added", "incident.action_added"]


def test_a_hand_opened_incident_finds_its_detection_in_the_log(store: Store) -> None:
    with store.session() as session:
        events.record(session, kind="check.state_changed", actor="system:control-plane",
                      target="orders/http", service="orders", outcome="CRITICAL",
                      details={"from": "OK", "to": "CRITICAL"}, ts=minutes(-90))  # too long ago
        events.record(session, kind="check.state_changed", actor="system:control-plane",
                      target="orders/http", service="orders", outcome="CRITICAL",
                      details={"from": "OK", "to": "CRITICAL"}, ts=minutes(-7))
        events.record(session, kind="check.state_changed", actor="system:control-plane",
                      target="orders/http", service="orders", outcome="OK", ts=minutes(-8))
    number = _open(store)
    with store.session() as session:
        assert service.get_or_raise(session, incident_id=number).detected_at == minutes(-7)
    quiet = _open(store, service="payments")
    with store.session() as session:
        assert service.get_or_raise(session, incident_id=quiet).detected_at is None


def test_the_timeline_is_the_services_events_around_the_incident(store: Store) -> None:
    with store.session() as session:
        for ts, kind, svc in [(minutes(-45), "deploy.finished", "orders"),  # before the lead
                              (minutes(-20), "deploy.finished", "orders"),
                              (minutes(-5), "check.state_changed", "orders"),
                              (minutes(-4), "check.state_changed", "payments"),  # another service
                              (minutes(-3), "metrics.scrape", "orders"),  # not a timeline kind
                              (minutes(30), "runbook.step", "orders")]:
            events.record(session, kind=kind, actor="system:x", target="orders", service=svc,
                          outcome="ok", details={"check": "http", "from": "OK", "to": "CRITICAL"}, ts=ts)
    number = _open(store)
    with store.session() as session:
        service.add_note(session, incident_id=number, text="Pool exhausted", actor="cli:ana",
                         now=minutes(8))
        service.resolve(session, incident_id=number, actor="cli:ana", now=minutes(40), settings=SETTINGS)
        events.record(session, kind="check.state_changed", actor="system:x", target="orders/http",
                      service="orders", outcome="OK", ts=minutes(50))  # within the tail
        events.record(session, kind="check.state_changed", actor="system:x", target="orders/http",
                      service="orders", outcome="OK", ts=minutes(40 + 16))  # after it
    with store.session() as session:
        entries = service.get_timeline(session, incident_id=number, now=minutes(120))
    assert [(e.at, e.kind) for e in entries] == [
        (minutes(-20), "deploy.finished"), (minutes(-5), "check.state_changed"),
        (minutes(0), "incident.opened"), (minutes(8), "incident.note"),
        (minutes(30), "runbook.step"), (minutes(40), "incident.acknowledged"),
        (minutes(40), "incident.resolved"),
        (minutes(50), "check.state_changed"),
    ]
    assert entries[3].what == "INC-1 note: Pool exhausted"
    assert entries[1].what == "Check http of orders: OK \u2192 CRITICAL"


def test_incidents_are_listed_newest_first_and_filtered(store: Store) -> None:
    first = _open(store)
    second = _open(store, service="payments", now=minutes(10))
    with store.session() as session:
        service.resolve(session, incident_id=first, actor="cli:ana", now=minutes(20), settings=SETTINGS)
        assert [r.id for r in service.get_all(session)] == [second, first]
        assert [r.id for r in service.get_all(session, open_only=True)] == [second]
        assert [r.id for r in service.get_all(session, service="orders")] == [first]
        assert [r.id for r in service.get_all(session, since=minutes(5))] == [second]
        shown = service.incident_dict(service.get_or_raise(session, incident_id=first), SETTINGS)
    assert shown["targets"]["postmortem_due"] == (minutes(20) + timedelta(hours=48)).isoformat()
