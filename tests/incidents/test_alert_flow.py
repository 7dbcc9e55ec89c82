"""Whole alerting cycles over a real store open and join incidents: one incident per service
and group, muted alerts and low severities open none, a resolved incident is not joined, and
an overdue status update reminds the commander once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import text

from opsplane.alerts.flows import Alerting, dependencies
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Sample
from opsplane.clock import ManualClock
from opsplane.config import loads
from opsplane.events import service as events
from opsplane.incidents import postmortem, service
from opsplane.incidents.models import IncidentsSettings, Status
from opsplane.store import Store
from tests.alerts.factories import SHOP_INVENTORY, T0

RULES = AlertingSettings.model_validate({"rules": [
    {"name": "DatabaseDown", "expr": "pg_up == 0", "for": "30s", "severity": "P0",
     "annotations": {"summary": "{{ $labels.service }} is down"}},
    {"name": "SlowQueries", "expr": "pg_slow > 1", "severity": "P1"},
    {"name": "HighErrorRate", "expr": "error_ratio > 0.01", "severity": "P1"},
    {"name": "DiskFilling", "expr": "disk_used > 0.8", "severity": "P2"},
]})


class Platform:
    """What the query engine would return: series set and cleared by the test."""

    def __init__(self) -> None:
        self.series: dict[str, list[Sample]] = {}

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return self.series.get(expr, [])

    def fail(self, expr: str, service: str, **labels: str) -> None:
        self.series[expr] = [({"service": service, **labels}, 1.0)]

    def heal(self, expr: str) -> None:
        self.series.pop(expr, None)


def _alerting(store: Store, clock: ManualClock, platform: Platform,
              settings: IncidentsSettings | None = None) -> Alerting:
    return Alerting(RULES, store=store, evaluate=platform.evaluate, clock=clock,
                    depends_on=dependencies(loads(SHOP_INVENTORY)),
                    incidents=settings or IncidentsSettings())


def _incidents(store: Store) -> list[tuple[str, str, str, list[str]]]:
    with store.session() as session:
        return [(row.service, row.severity, row.status,
                 [a.alertname for a in service.get_alerts(session, incident_id=row.id)])
                for row in reversed(service.get_all(session))]


def test_a_down_database_opens_one_incident_that_its_other_alerts_join(store: Store) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, clock, platform)
    platform.fail("pg_up == 0", "postgres")
    platform.fail("disk_used > 0.8", "postgres")  # P2: no incident by default
    alerting.run_once()  # DatabaseDown pending
    assert _incidents(store) == []
    clock.advance(30)
    platform.fail("error_ratio > 0.01", "orders")  # muted: orders depends on postgres, down (P0)
    alerting.run_once()
    assert _incidents(store) == [("postgres", "P0", "triggered", ["DatabaseDown"])]
    platform.fail("pg_slow > 1", "postgres")
    clock.advance(15)
    alerting.run_once()
    clock.advance(15)
    alerting.run_once()  # nothing new: the same firings are already in the incident
    assert _incidents(store) == [("postgres", "P0", "triggered", ["DatabaseDown", "SlowQueries"])]
    with store.session() as session:
        [row] = service.get_all(session)
        assert row.title == "postgres is down"
        assert row.detected_at == T0  # the alert was active from the first evaluation
        assert row.started_at == T0 + timedelta(seconds=30)
        kinds = [e.kind for e in reversed(events.get_all(session, kind="incident.*"))]
    assert kinds == ["incident.opened", "incident.alert_joined", "incident.alert_joined"]
    with store.session() as session:  # the page named orders' muted alert: orders was affected
        facts = service.postmortem_facts(session, incident_id=row.id, settings=IncidentsSettings(),
                                         now=clock.now())
    assert postmortem.affected_services(facts) == ["postgres", "orders"]


def test_a_more_severe_alert_raises_the_incident_and_another_group_opens_its_own(store: Store) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, clock, platform)
    platform.fail("pg_slow > 1", "postgres")
    alerting.run_once()
    platform.fail("pg_up == 0", "postgres")
    platform.fail("error_ratio > 0.01", "postgres", group="checkout")
    alerting.run_once()
    clock.advance(30)
    alerting.run_once()
    assert _incidents(store) == [("postgres", "P0", "triggered", ["SlowQueries", "DatabaseDown"]),
                                 ("postgres", "P1", "triggered", ["HighErrorRate"])]
    with store.session() as session:
        [raised] = events.get_all(session, kind="incident.severity_raised")
    assert raised.details["from"] == "P1" and raised.details["to"] == "P0"


def test_a_resolved_incident_is_not_joined_and_a_new_firing_opens_a_new_one(store: Store) -> None:
    clock, platform = ManualClock(T0), Platform()
    settings = IncidentsSettings()
    alerting = _alerting(store, clock, platform, settings)
    platform.fail("pg_slow > 1", "postgres")
    alerting.run_once()
    with store.session() as session:
        [row] = service.get_all(session)
        service.resolve(session, incident_id=row.id, actor="cli:ana", now=clock.now(), settings=settings)
    clock.advance(15)
    alerting.run_once()  # still the same firing: it belongs to the resolved incident
    assert [i[2] for i in _incidents(store)] == ["resolved"]
    platform.heal("pg_slow > 1")
    clock.advance(15)
    alerting.run_once()
    platform.fail("pg_slow > 1", "postgres")
    clock.advance(15)
    alerting.run_once()
    assert [i[2] for i in _incidents(store)] == ["resolved", "triggered"]


def test_configured_severities_decide_what_opens_an_incident(store: Store) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, clock, platform, IncidentsSettings(open_for=["P2"]))
    platform.fail("pg_slow > 1", "postgres")
    platform.fail("disk_used > 0.8", "postgres")
    alerting.run_once()
    assert _incidents(store) == [("postgres", "P2", "triggered", ["DiskFilling"])]


def test_an_overdue_status_update_reminds_the_commander_once(store: Store) -> None:
    clock, platform = ManualClock(T0), Platform()
    settings = IncidentsSettings()
    alerting = _alerting(store, clock, platform, settings)
    platform.fail("pg_slow > 1", "postgres")  # P1: an update every 30 minutes
    alerting.run_once()
    with store.session() as session:
        [row] = service.get_all(session)
        service.acknowledge(session, incident_id=row.id, actor="cli:ana", now=clock.now())
    for _ in range(3):
        clock.advance(15 * 60)
        alerting.run_once()
    with store.session() as session:
        reminders = events.get_all(session, kind="incident.update_due")
        [(due_at, commander)] = [(e.details["due_at"], e.details["commander"]) for e in reminders]
        assert commander == "ana" and due_at == (T0 + timedelta(minutes=30)).isoformat()
        service.post_update(session, incident_id=row.id, status=Status.IDENTIFIED,
                            summary="Slow queries from a missing index", actor="cli:ana",
                            now=clock.now(), settings=settings,
                            next_update_at=clock.now() + timedelta(minutes=10))
    clock.advance(10 * 60)
    alerting.run_once()
    with store.session() as session:
        assert len(events.get_all(session, kind="incident.update_due")) == 2


def test_a_failing_incident_step_does_not_hold_back_the_page(tmp_path, caplog) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/broken.db")
    with store.engine.begin() as connection:  # no incident tables: every incident write fails
        for table in ("incident_action_items", "incident_alerts", "incident_updates", "incidents"):
            connection.execute(text(f"DROP TABLE {table}"))
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, clock, platform)
    platform.fail("pg_slow > 1", "postgres")
    alerting.run_once()
    clock.advance(30)
    report = alerting.run_once()
    assert [n.firing[0].name for n in report.sent] == ["SlowQueries"]
    assert "could not be turned into incidents" in caplog.text
