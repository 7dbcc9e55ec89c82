"""Paging for incidents over a real store with an injected clock: the manual's P0 route minute
by minute, an acknowledgement that stops it, the resolution that follows the pages, restarts
and downtime that neither duplicate nor miss a page, reminders, unreachable contacts, and a
page delivered through the dispatcher to local HTTP receivers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import event, select

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.errors import ConfigError
from opsplane.events.tables import Event
from opsplane.incidents import service
from opsplane.incidents.models import IncidentsSettings
from opsplane.notify.dispatcher import Dispatcher
from opsplane.store import Store
from tests.incidents import paging_support as support
from tests.incidents.paging_support import CHANNELS, CONTACTS, MINUTE
from tests.oncall.factories import T0, oncall_data
from tests.support.receivers import RecordingReceiver

# the manual's P0 route with the test roster: ana primary, ben secondary, tina, paul, vera
P0_PAGES = {
    0: [("pagerduty", "escalation:1:p0:r0:s0:ana:pagerduty", None),
        ("sms-gateway", "escalation:1:p0:r0:s0:ana:sms", "+15550101"),
        ("voice-gateway", "escalation:1:p0:r0:s0:ana:phone", "+15550101"),
        ("incidents", "escalation:1:p0:r0:s0:#incidents:channel", None)],
    5: [("pagerduty", "escalation:1:p0:r0:s1:ben:pagerduty", None),
        ("voice-gateway", "escalation:1:p0:r0:s1:ben:phone", "+15550102")],
    15: [("incidents", "incident:1:update_due:2026-03-04T10:15+00:00", None)],
    30: [("pagerduty", "escalation:1:p0:r0:s2:tina:pagerduty", None),
         ("sms-gateway", "escalation:1:p0:r0:s2:tina:sms", "+15550110")],
    45: [("pagerduty", "escalation:1:p0:r0:s3:paul:pagerduty", None)],
    60: [("voice-gateway", "escalation:1:p0:r0:s4:vera:phone", "+15550199")],
}


def test_a_p0_pages_minute_by_minute_exactly_as_the_route_says(store: Store) -> None:
    inventory = support.inventory()
    assert support.open_incident(store) == 1
    clock = ManualClock(T0)
    expected: list[tuple[str, str, str | None]] = []
    for minute in range(0, 91):
        report = support.page(store, inventory, clock.now() - T0)
        expected += P0_PAGES.get(minute, [])
        assert support.rows(store) == expected, f"minute {minute}"
        assert report.queued == len(P0_PAGES.get(minute, [])), f"minute {minute}"
        clock.advance(60)
    assert all(group == "incident:1" for _, status, group in support.statuses(store)
               if status == "trigger" and not group.endswith(":reminders"))


def test_an_ack_at_minute_three_stops_the_escalation_and_queues_acknowledge_to_each_page(
        store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    for minute in range(0, 3):
        support.page(store, inventory, minute * MINUTE)
        support.deliver(store, inventory, minute * MINUTE)
    with store.session() as session:
        service.acknowledge(session, incident_id=incident, actor="cli:ana", now=T0 + 3 * MINUTE)
    for minute in range(3, 91):
        support.page(store, inventory, minute * MINUTE)

    rows = support.rows(store)
    assert not [key for _, key, _ in rows if ":s1:" in key or ":s2:" in key]
    acks = [(channel, to) for (channel, key, to) in rows if "incident.acknowledged" in key]
    assert acks == [("pagerduty", None), ("sms-gateway", "+15550101"),
                    ("voice-gateway", "+15550101"), ("incidents", None)]
    statuses = [status for _, status, group in support.statuses(store) if group == "incident:1"]
    assert statuses == ["trigger"] * 4 + ["acknowledge"] * 4


def test_resolving_queues_resolve_after_the_trigger_on_the_same_channels(store: Store) -> None:
    inventory = support.inventory()
    incident = support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    support.deliver(store, inventory, timedelta(0))
    with store.session() as session:
        service.resolve(session, incident_id=incident, actor="cli:ana", now=T0 + 2 * MINUTE,
                        settings=IncidentsSettings())
    report = support.page(store, inventory, 2 * MINUTE)
    later = support.page(store, inventory, 10 * MINUTE)

    assert report.queued == 4 and later.queued == 0
    ordered = [(channel, status) for channel, status, group in support.statuses(store)
               if group == "incident:1"]
    assert ordered == [("pagerduty", "trigger"), ("sms-gateway", "trigger"), ("voice-gateway", "trigger"),
                       ("incidents", "trigger"), ("pagerduty", "resolve"), ("sms-gateway", "resolve"),
                       ("voice-gateway", "resolve"), ("incidents", "resolve")]


def test_paging_twice_in_a_minute_or_after_a_restart_queues_nothing_twice(store: Store) -> None:
    incident = support.open_incident(store)
    assert incident == 1
    first = support.page(store, support.inventory(), 6 * MINUTE)
    again = support.page(store, support.inventory(), 6 * MINUTE)
    restarted = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        after_restart = support.page(restarted, support.inventory(), 6 * MINUTE + timedelta(seconds=30))
    finally:
        restarted.close()
    assert (first.queued, again.queued, after_restart.queued) == (6, 0, 0)
    assert len(support.rows(store)) == 6


def test_a_step_that_fell_due_while_nothing_ran_is_sent_once_afterwards(store: Store) -> None:
    inventory = support.inventory()
    support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    late = support.page(store, inventory, 50 * MINUTE)  # serve was down from minute 1 to minute 50
    again = support.page(store, inventory, 51 * MINUTE)

    keys = [key for key in late.keys if key.startswith("escalation:")]
    assert keys == ["escalation:1:p0:r0:s1:ben:pagerduty", "escalation:1:p0:r0:s1:ben:phone",
                    "escalation:1:p0:r0:s2:tina:pagerduty", "escalation:1:p0:r0:s2:tina:sms",
                    "escalation:1:p0:r0:s3:paul:pagerduty"]
    assert again.queued == 0


def test_after_downtime_a_step_superseded_by_its_repeat_is_not_replayed(store: Store) -> None:
    policy = {"steps": [{"notify": ["layer:primary"], "via": ["pagerduty"]},
                        {"delay": "5m", "notify": ["layer:secondary"], "via": ["pagerduty"]}],
              "repeat": 1, "repeat_after": "10m"}  # r0: 0, 5; r1: 15, 20
    inventory = support.inventory(policies={"p0": policy})
    support.open_incident(store)
    support.page(store, inventory, timedelta(0))
    late = support.page(store, inventory, 21 * MINUTE)
    assert late.keys == ["escalation:1:p0:r1:s0:ana:pagerduty", "escalation:1:p0:r1:s1:ben:pagerduty"]
    assert support.page(store, inventory, 22 * MINUTE).queued == 0


def test_a_due_status_update_reminds_the_commander_once_by_slack(store: Store) -> None:
    inventory = support.inventory()
    support.open_incident(store, severity="P1", commander="ana")
    reports = [support.page(store, inventory, minute * MINUTE) for minute in (29, 30, 31, 45)]
    reminders = [(c, k, to) for c, k, to in support.rows(store) if ":update_due:" in k]
    assert reminders == [("incidents", "incident:1:update_due:2026-03-04T10:30+00:00:U0ANA", "U0ANA")]
    assert reports[0].next_due == T0 + 30 * MINUTE


def test_a_status_update_is_posted_once_to_the_incident_channels(store: Store) -> None:
    from opsplane.incidents.models import Status

    inventory = support.inventory()
    incident = support.open_incident(store)
    with store.session() as session:
        service.post_update(session, incident_id=incident, status=Status.IDENTIFIED,
                            summary="Card processor times out", actor="cli:ana",
                            now=T0 + MINUTE, settings=IncidentsSettings(), public=True)
    support.page(store, inventory, MINUTE)
    support.page(store, inventory, 2 * MINUTE)
    updates = [(c, k) for c, k, _ in support.rows(store) if ":update:" in k]
    assert updates == [("incidents", "incident:1:update:1")]


def test_a_contact_kind_without_a_channel_is_recorded_once_not_a_failure(store: Store) -> None:
    channels = {name: spec for name, spec in CHANNELS.items() if name != "sms-gateway"}
    contacts = {k: v for k, v in CONTACTS.items() if k != "sms"}
    data = {"platform": {"name": "shop"}, "channels": {"named": channels},
            "oncall": oncall_data(contact_channels=contacts)}
    inventory = loads(yaml.safe_dump(data, sort_keys=False), "opsplane.yaml")
    support.open_incident(store)
    first = support.page(store, inventory, timedelta(0))
    second = support.page(store, inventory, MINUTE)

    assert (first.queued, first.unreachable, second.unreachable) == (3, 1, 0)
    with store.session() as session:
        found = session.scalars(select(Event).where(Event.kind == "oncall.unreachable")).all()
        assert [(e.target, e.details["person"], e.details["kind"]) for e in found] == [
            ("escalation:1:p0:r0:s0:ana:sms", "ana", "sms")]


def test_no_open_incident_costs_one_query(store: Store) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        report = support.page(store, support.inventory(), timedelta(0))
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert report.incidents == 0
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_a_contact_channel_that_does_not_exist_is_refused_at_load_time_with_its_line() -> None:
    data = {"platform": {"name": "shop"}, "channels": {"named": CHANNELS},
            "oncall": oncall_data(contact_channels={**CONTACTS, "sms": "sms-gatway"})}
    with pytest.raises(ConfigError) as raised:
        loads(yaml.safe_dump(data, sort_keys=False), "opsplane.yaml")
    [problem] = [str(p) for p in raised.value.problems]
    assert problem.startswith("opsplane.yaml:")
    assert problem.split(":")[1].isdigit()
    assert problem.endswith("oncall.contact_channels.sms: unknown channel 'sms-gatway'; "
                            "did you mean 'sms-gateway'?; define it under channels.named")


def test_a_page_arrives_at_pagerduty_the_sms_gateway_and_slack_through_the_dispatcher(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingReceiver() as pd, RecordingReceiver() as sms, RecordingReceiver() as slack:
        monkeypatch.setenv("PD_KEY", "R0UTINGKEY0000000000000000000000")
        monkeypatch.setenv("SLACK_URL", slack.url("/services/T0/B0/X"))
        channels = {**CHANNELS, "pagerduty": {**CHANNELS["pagerduty"], "url": pd.url("/v2/enqueue")},
                    "sms-gateway": {"type": "webhook", "url": sms.url("/sms")}}
        inventory = support.inventory(channels)
        incident = support.open_incident(store)
        dispatcher = Dispatcher(store, inventory.channels)
        try:
            support.page(store, inventory, timedelta(0))
            dispatcher.run_once(T0)
            with store.session() as session:
                service.acknowledge(session, incident_id=incident, actor="cli:ana", now=T0 + MINUTE)
            support.page(store, inventory, MINUTE)
            dispatcher.run_once(T0 + MINUTE)
        finally:
            dispatcher.close()

        events = [(b.json()["event_action"], b.json()["dedup_key"]) for b in pd.requests]
        assert events == [("trigger", "incident:1"), ("acknowledge", "incident:1")]
        texts = [(r.json()["to"], r.json()["status"], r.json()["key"]) for r in sms.requests]
        assert texts == [("+15550101", "trigger", "escalation:1:p0:r0:s0:ana:sms"),
                         ("+15550101", "acknowledge",
                          "incident:1:incident.acknowledged:2026-03-04T10:01:00+00:00:+15550101")]
        assert slack.requests[0].json()["blocks"][0]["text"]["text"] == "[P0] payments: INC-1: Payments down"


_CYCLE = """
import os, signal, sys
from datetime import timedelta
from opsplane.incidents import paging
from opsplane.store import Store
from tests.incidents.paging_support import T0, inventory
store = Store.open(sys.argv[1], migrate=False)
with store.session() as session:
    paging.page(session, inventory=inventory(), now=T0 + timedelta(minutes=int(sys.argv[2])))
    session.flush()
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # dies with its pages written but not committed
"""


def test_a_process_killed_mid_cycle_then_restarted_pages_once(store: Store) -> None:
    import subprocess
    import sys
    from pathlib import Path

    url = store.engine.url.render_as_string(hide_password=False)
    root = Path(__file__).resolve().parents[2]
    support.open_incident(store)
    support.page(store, support.inventory(), timedelta(0))

    def cycle(minute: int, how: str) -> int:
        return subprocess.run([sys.executable, "-c", _CYCLE, url, str(minute), how], cwd=root,
                              capture_output=True, timeout=60).returncode

    assert cycle(6, "kill") == -9
    assert len(support.rows(store)) == 4
    assert cycle(6, "finish") == 0
    assert support.page(store, support.inventory(), 6 * MINUTE).queued == 0
    assert support.rows(store) == P0_PAGES[0] + P0_PAGES[5]
