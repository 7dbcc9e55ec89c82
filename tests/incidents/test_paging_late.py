"""Paging that runs late (serve was down, or a dispatcher pass took minutes) and severities that
rise mid-escalation, over a real store with an injected clock: a settled incident pages no
one, and a raised incident sends its new policy's due pages at once."""

from __future__ import annotations

from datetime import timedelta

from opsplane.alerts.models import Severity
from opsplane.incidents import service
from opsplane.incidents.models import AlertSignal, IncidentsSettings
from opsplane.notify import service as notify
from opsplane.notify.models import Notification
from opsplane.store import Store
from tests.incidents import paging_support as support
from tests.incidents.paging_support import MINUTE
from tests.oncall.factories import T0

FIRST_PAGES = 4  # the P0's first step: ana by PagerDuty, SMS and phone, and #incidents


def _escalations(store: Store) -> list[tuple[str, str, str | None]]:
    return [row for row in support.rows(store) if row[1].startswith("escalation:")]


def _by_status(store: Store, status: str) -> list[str]:
    return [channel for channel, row_status, _ in support.statuses(store) if row_status == status]


def test_a_step_that_fell_due_before_the_ack_pages_no_one_when_paging_runs_late(store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    support.deliver(store, inventory, timedelta(0))
    # serve is down from minute 1 to minute 40: the secondary's step falls due at minute 5,
    # ana acknowledges at minute 10, and paging next runs at minute 40
    with store.session() as session:
        service.acknowledge(session, incident_id=incident, actor="cli:ana", now=T0 + 10 * MINUTE)
    late = support.page(store, inventory, 40 * MINUTE)

    assert len(_escalations(store)) == FIRST_PAGES
    assert late.pages == 0
    assert _by_status(store, "acknowledge") == ["pagerduty", "sms-gateway", "voice-gateway", "incidents"]


def test_steps_that_fell_due_before_the_resolution_page_no_one_when_paging_runs_late(
        store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    support.deliver(store, inventory, timedelta(0))
    with store.session() as session:  # the secondary (5 min) and the team lead (30 min) fell due
        service.resolve(session, incident_id=incident, actor="cli:ana", now=T0 + 32 * MINUTE,
                        settings=IncidentsSettings())
    support.page(store, inventory, 50 * MINUTE)

    assert len(_escalations(store)) == FIRST_PAGES
    assert _by_status(store, "resolve") == ["pagerduty", "sms-gateway", "voice-gateway", "incidents"]
    assert _by_status(store, "acknowledge") == []


def test_an_incident_acknowledged_before_paging_first_ran_pages_no_one(store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    with store.session() as session:
        service.acknowledge(session, incident_id=incident, actor="cli:ana", now=T0 + MINUTE)
    report = support.page(store, inventory, 2 * MINUTE)

    assert support.rows(store) == []
    assert (report.queued, report.unreachable) == (0, 0)


def test_a_long_paging_pass_that_ends_after_the_ack_queues_nothing_for_its_steps(store: Store) -> None:
    # the cycle that should have run at minute 5 starts after ana's ack at minute 5:30
    inventory = support.inventory()
    incident = support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    with store.session() as session:
        service.acknowledge(session, incident_id=incident, actor="cli:ana",
                            now=T0 + 5 * MINUTE + timedelta(seconds=30))
    support.page(store, inventory, 6 * MINUTE)

    assert [key for _, key, _ in _escalations(store) if ":s1:" in key] == []


def test_raising_a_p1_to_p0_at_minute_20_sends_the_p0_pages_due_by_then_at_once(store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store, severity="P1")
    for minute in range(0, 20):  # P1: ana by PagerDuty at 0, ben by PagerDuty at 15
        support.page(store, inventory, minute * MINUTE)
    before = support.rows(store)
    with store.session() as session:
        [raised] = service.open_or_join(session, alerts=[AlertSignal(
            fingerprint="PaymentsDown-payments", name="PaymentsDown", severity="P0", service="payments",
            group="payments|group=", summary="No payment succeeds", active_at=T0 + 20 * MINUTE)],
            now=T0 + 20 * MINUTE, settings=IncidentsSettings())
        assert (raised.id, raised.severity) == (incident, "P0")
    support.page(store, inventory, 20 * MINUTE)

    new = [(channel, to) for channel, key, to in support.rows(store)[len(before):]
           if key.startswith("escalation:")]
    # P0's first two steps: ana by SMS and phone, #incidents, ben by phone (PagerDuty pages
    # join the incident's one PagerDuty incident, so sending them again changes nothing)
    assert {("sms-gateway", "+15550101"), ("voice-gateway", "+15550101"), ("incidents", None),
            ("voice-gateway", "+15550102")} <= set(new)
    assert not [key for _, key, _ in support.rows(store) if ":s2:" in key]  # the team lead: at 30


def test_after_a_raise_the_new_policys_steps_are_paged_once(store: Store) -> None:
    inventory = support.inventory()
    support.open_incident(store, severity="P1")
    support.page(store, inventory, timedelta(0))
    with store.session() as session:
        service.open_or_join(session, alerts=[AlertSignal(
            fingerprint="PaymentsDown-payments", name="PaymentsDown", severity="P0", service="payments",
            group="payments|group=", summary="No payment succeeds", active_at=T0 + 2 * MINUTE)],
            now=T0 + 2 * MINUTE, settings=IncidentsSettings())
    reports = [support.page(store, inventory, minute * MINUTE) for minute in range(2, 40)]
    keys = [key for _, key, _ in _escalations(store)]

    assert len(keys) == len(set(keys))
    assert [r.pages for r in reports if r.pages] == [4, 2, 2]  # P0 steps at 0, 5 and 30


def test_pages_queued_before_keys_named_their_policy_are_not_sent_again(store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    with store.session() as session:  # the first step, as a version without the policy in keys queued it
        notify.enqueue(session, notification=Notification(
            key=f"escalation:{incident}:r0:s0:ana:sms", group=f"incident:{incident}", severity=Severity.P0,
            summary="INC-1: Payments down", to="+15550101"), channels=["sms-gateway"],
            settings=inventory.channels, now=T0)
    upgraded = support.page(store, inventory, MINUTE)
    later = support.page(store, inventory, 5 * MINUTE)

    assert upgraded.queued == 0
    assert later.keys == ["escalation:1:p0:r0:s1:ben:pagerduty", "escalation:1:p0:r0:s1:ben:phone"]
