"""The post-mortem draft from a real sequence of events: a deploy, an alert that fires and
opens an incident through the alerting cycle, its notification, the acknowledgement, a public
update, a note, the resolution and an action item. The draft has the manual's sections, the
real times and the durations against the severity's targets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from opsplane.alerts.flows import Alerting
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Sample
from opsplane.clock import ManualClock
from opsplane.deploy import service as deploys
from opsplane.incidents import postmortem, service
from opsplane.incidents.models import IncidentsSettings, Status
from opsplane.store import Store
from tests.incidents.factories import T0, minutes

SETTINGS = IncidentsSettings()
RULES = AlertingSettings.model_validate({"rules": [
    {"name": "HighErrorRate", "expr": "error_ratio > 0.05", "for": "1m", "severity": "P1",
     "annotations": {"summary": "{{ $labels.service }}: {{ $value | humanizePercentage }} errors"}},
]})


class Platform:
    def __init__(self) -> None:
        self.failing = False

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return [({"service": "orders"}, 0.3)] if self.failing and expr == "error_ratio > 0.05" else []


def _at(clock: ManualClock, when: datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())


def _draft(store: Store) -> str:
    clock, platform = ManualClock(T0), Platform()
    alerting = Alerting(RULES, store=store, evaluate=platform.evaluate, clock=clock, incidents=SETTINGS)
    with store.session() as session:
        deploy = deploys.create(session, service="orders", environment="production", strategy="rolling",
                                from_version="2.4.0", to_version="2.4.1", plan=[{"kind": "precheck"}],
                                params={}, approvals_needed=0, actor="cli:ben", now=T0)
        deploys.transition(session, deploy, "succeeded", actor="system:deploy", now=T0,
                           reason="orders runs 2.4.1")
    platform.failing = True
    for at in (minutes(5), minutes(6), minutes(6.5)):  # pending, firing (incident), notified
        _at(clock, at)
        alerting.run_once()
    with store.session() as session:
        [row] = service.get_all(session)
        number = row.id
        service.acknowledge(session, incident_id=number, actor="cli:ana", now=minutes(9))
        service.post_update(session, incident_id=number, status=Status.IDENTIFIED,
                            summary="Orders fail for 30% of checkouts after 2.4.1",
                            actions="Rolling back orders to 2.4.0", public=True, actor="cli:ana",
                            now=minutes(15), settings=SETTINGS)
        service.add_note(session, incident_id=number, text="Rollback done, errors falling",
                         actor="cli:ben", now=minutes(20))
        service.resolve(session, incident_id=number, actor="cli:ana", now=minutes(36), settings=SETTINGS,
                        summary="Rolled back; checkout works",
                        root_cause="2.4.1 shrank the database pool to 5 connections")
        service.add_action_item(session, incident_id=number, title="Alert on pool saturation",
                                owner="ben", due=date(2026, 3, 10), actor="cli:ana", now=minutes(38))
    platform.failing = False
    _at(clock, minutes(37))
    alerting.run_once()
    with store.session() as session:
        facts = service.postmortem_facts(session, incident_id=number, settings=SETTINGS, now=minutes(40))
    return postmortem.render(facts)


def test_the_draft_has_the_manuals_sections_with_real_times_and_durations(store: Store) -> None:
    draft = _draft(store)
    headings = [line[3:] for line in draft.splitlines() if line.startswith("## ")]
    assert [h for h in headings if h in postmortem.SECTIONS] == list(postmortem.SECTIONS)
    assert draft.startswith("# Post-mortem: INC-1 orders: 30% errors\n")
    assert "- **Commander**: ana" in draft and "- **Participants**: ana, ben" in draft
    assert "- **Post-mortem**: required by 2026-03-05 14:36:00 UTC" in draft
    timeline = [line for line in draft.splitlines() if line.startswith("| 14:")]
    assert timeline == [
        "| 14:00:00 | Deploy 1 of orders 2.4.1 asked for: rolling from 2.4.0 in production, 1 step "
        "| cli:ben |",
        "| 14:00:00 | Deploy 1 of orders 2.4.1 succeeded: orders runs 2.4.1 | system:deploy |",
        "| 14:06:00 | Alert HighErrorRate firing at 0.3 (service=orders): orders: 30% errors | alerting |",
        "| 14:06:00 | INC-1 opened (P1): orders: 30% errors | system:incidents |",
        "| 14:06:00 | Alert HighErrorRate (P1) joined INC-1 | system:incidents |",
        "| 14:06:30 | Notified default of firing HighErrorRate (orders) | alerting |",
        "| 14:09:00 | INC-1 acknowledged; commander ana | cli:ana |",
        "| 14:15:00 | INC-1 status identified: Orders fail for 30% of checkouts after 2.4.1 | cli:ana |",
        "| 14:20:00 | INC-1 note: Rollback done, errors falling | cli:ben |",
        "| 14:36:00 | INC-1 resolved: Rolled back; checkout works | cli:ana |",
        "| 14:37:00 | Alert HighErrorRate resolved (service=orders) | alerting |",
        "| 14:37:00 | Notified default of resolved HighErrorRate (orders) | alerting |",
        "| 14:38:00 | INC-1 action item: Alert on pool saturation (owner ben) | cli:ana |",
    ]
    changes = draft.split("## Changes")[1].split("## ")[0]
    assert "- Deploy 1: 14:00:00 Deploy 1 of orders 2.4.1 asked for" in changes
    assert "then 14:00:00 Deploy 1 of orders 2.4.1 succeeded" in changes
    assert "2.4.1 shrank the database pool to 5 connections" in draft
    assert "- **Duration**: 30m\n" in draft
    assert "- **Affected services**: orders" in draft
    assert "- **Time to detect**: 1m\n" in draft
    assert "- **Time to acknowledge**: 3m (target 15m)" in draft
    assert "- **Time to resolve**: 30m (target 4h 00m)" in draft
    assert "- **Alerts**: HighErrorRate (P1)" in draft
    well = draft.split("## What went well")[1].split("## What went wrong")[0]
    assert "Acknowledged in 3m (target 15m)." in well and "Resolved in 30m (target 4h 00m)." in well
    assert "| 1 | Alert on pool saturation | ben | 2026-03-10 | open |" in draft


def test_missed_targets_and_overdue_updates_are_what_went_wrong(store: Store) -> None:
    with store.session() as session:
        row = service.create(session, title="Site down", service="gateway", severity="P0",
                             actor="cli:ana", now=T0, settings=SETTINGS)
        service.remind(session, now=minutes(15))
        service.acknowledge(session, incident_id=row.id, actor="cli:ana", now=minutes(12))
        service.resolve(session, incident_id=row.id, actor="cli:ana", now=minutes(95), settings=SETTINGS)
        facts = service.postmortem_facts(session, incident_id=row.id, settings=SETTINGS, now=minutes(100))
    draft = postmortem.render(facts)
    wrong = draft.split("## What went wrong")[1].split("## Action items")[0]
    assert "Acknowledged in 12m (target 5m)." in wrong
    assert "Resolved in 1h 35m (target 1h 00m)." in wrong
    assert "Status updates were overdue 1 time." in wrong
    assert "- **Time to detect**: unknown" in draft
    assert "_Add with `opsplane incident action`_" in draft


def test_events_of_another_incident_of_the_service_name_that_incident(store: Store) -> None:
    # The timeline shows what happened to the service around the incident, other incidents
    # included; their opening and acknowledgement must not read as this one's.
    with store.session() as session:
        first = service.create(session, title="orders: 30% errors", service="orders", severity="P1",
                               actor="system:incidents", now=minutes(5), settings=SETTINGS)
        second = service.create(session, title="checkout slow", service="orders", severity="P2",
                                actor="cli:ben", now=minutes(7), settings=SETTINGS)
        service.acknowledge(session, incident_id=second.id, actor="cli:ben", now=minutes(8))
        service.resolve(session, incident_id=first.id, actor="cli:ana", now=minutes(20), settings=SETTINGS,
                        summary="Rolled back")
        facts = service.postmortem_facts(session, incident_id=first.id, settings=SETTINGS,
                                         now=minutes(30))

    timeline = [line for line in postmortem.render(facts).splitlines() if line.startswith("| 14:")]

    assert timeline == [
        "| 14:05:00 | INC-1 opened (P1): orders: 30% errors | system:incidents |",
        "| 14:07:00 | INC-2 opened (P2): checkout slow | cli:ben |",
        "| 14:08:00 | INC-2 acknowledged; commander ben | cli:ben |",
        "| 14:20:00 | INC-1 acknowledged; commander ana | cli:ana |",  # resolving acknowledges
        "| 14:20:00 | INC-1 resolved: Rolled back | cli:ana |",
    ]
