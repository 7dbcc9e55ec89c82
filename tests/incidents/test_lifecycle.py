"""The pure core: which moves an incident may make, when updates fall due, which incident a
firing alert joins, and the report's arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from opsplane.config import loads
from opsplane.errors import ConfigError
from opsplane.incidents import lifecycle, report
from opsplane.incidents.lifecycle import TransitionRefused
from opsplane.incidents.models import IncidentsSettings, Status, parse_next_update, parse_ref
from tests.incidents.factories import T0, incident, minutes, signal

SETTINGS = IncidentsSettings()


def test_the_manuals_severity_table_is_the_default() -> None:
    p0, p1, p2, p3 = (SETTINGS.policy(s) for s in ("P0", "P1", "P2", "P3"))
    assert (p0.response_time, p0.resolution_target, p0.update_cadence, p0.postmortem_within) == (
        300, 3600, 900, 86400)
    assert (p1.response_time, p1.resolution_target, p1.update_cadence, p1.postmortem_within) == (
        900, 14400, 1800, 172800)
    assert p2.postmortem_within is None and p3.update_cadence is None
    assert SETTINGS.open_for == ["P0", "P1"]


def test_the_inventory_overrides_one_severity_and_keeps_the_others() -> None:
    inventory = loads("""
platform: {name: shop}
incidents:
  open_for: [P0]
  severities:
    P1: {response_time: 10m, resolution_target: 2h, update_cadence: 20m}
""")
    assert inventory.incidents.policy("P1").update_cadence == 1200
    assert inventory.incidents.policy("P1").postmortem_within is None
    assert inventory.incidents.policy("P0").response_time == 300
    with pytest.raises(ConfigError, match="incidents.severities.P1.response_time"):
        loads("platform: {name: shop}\nincidents: {severities: {P1: {resolution_target: 2h}}}\n")


def test_acknowledging_names_the_commander_and_only_happens_once() -> None:
    acked = lifecycle.acknowledge(incident(), now=minutes(4), actor="cli:ana")
    assert acked.status is Status.ACKNOWLEDGED and acked.acknowledged_at == minutes(4)
    assert acked.commander == "ana"
    with pytest.raises(TransitionRefused, match="already acknowledged"):
        lifecycle.acknowledge(acked, now=minutes(5), actor="token:ben")
    delegated = lifecycle.acknowledge(incident(), now=minutes(4), actor="cli:ana", commander="ben")
    assert delegated.commander == "ben"


def test_an_update_moves_forward_or_back_but_a_resolved_incident_is_closed() -> None:
    identified = lifecycle.move(incident(), to=Status.IDENTIFIED, now=minutes(10), actor="cli:ana")
    assert identified.acknowledged_at == minutes(10)  # an update acknowledges on the way
    back = lifecycle.move(identified, to=Status.INVESTIGATING, now=minutes(20), actor="cli:ana")
    assert back.status is Status.INVESTIGATING
    done = lifecycle.move(back, to=Status.RESOLVED, now=minutes(30), actor="cli:ana")
    assert done.resolved_at == minutes(30) and done.next_update_at is None
    with pytest.raises(TransitionRefused, match="resolved"):
        lifecycle.move(done, to=Status.MONITORING, now=minutes(31), actor="cli:ana")
    with pytest.raises(TransitionRefused, match="resolved"):
        lifecycle.acknowledge(done, now=minutes(31), actor="cli:ana")
    with pytest.raises(TransitionRefused, match="not triggered"):
        lifecycle.move(back, to=Status.TRIGGERED, now=minutes(31), actor="cli:ana")


def test_the_next_update_follows_the_cadence_unless_a_time_was_promised() -> None:
    assert lifecycle.next_update_due("P0", SETTINGS, after=T0) == minutes(15)
    assert lifecycle.next_update_due("P1", SETTINGS, after=T0) == minutes(30)
    assert lifecycle.next_update_due("P3", SETTINGS, after=T0) is None
    assert lifecycle.next_update_due("P1", SETTINGS, after=T0, requested=minutes(5)) == minutes(5)


def test_a_reminder_is_due_once_per_due_time_and_never_for_a_resolved_incident() -> None:
    open_one = incident(next_update_at=minutes(30))
    assert not lifecycle.reminder_due(open_one, minutes(29))
    assert lifecycle.reminder_due(open_one, minutes(30))
    assert not lifecycle.reminder_due(replace(open_one, reminded_for=minutes(30)), minutes(45))
    assert lifecycle.reminder_due(replace(open_one, reminded_for=minutes(30), next_update_at=minutes(40)),
                                  minutes(45))
    assert not lifecycle.reminder_due(replace(open_one, status=Status.RESOLVED), minutes(45))


def test_alerts_join_the_open_incident_of_their_service_and_group() -> None:
    key = lifecycle.group_key("orders", {"group": "checkout", "x": "1"}, ["group"])
    assert key == "orders|group=checkout"
    assert lifecycle.group_key("orders", {}, ["group"]) == "orders|group="
    opened = incident(7, severity="P1")
    resolved = incident(8, service="payments", status=Status.RESOLVED)
    decided = lifecycle.plan(
        [signal("HighLatency", severity="P0"), signal("ErrorBudget", service="payments"),
         signal("DiskFilling", severity="P2"), signal("Checkout", group="orders|group=checkout")],
        [opened, resolved], SETTINGS)
    assert [a.name for a in decided.join[7]] == ["HighLatency"]
    assert decided.raise_to == {7: "P0"}
    assert sorted(decided.open) == ["orders|group=checkout", "payments|group="]  # resolved: not joined


def test_report_means_and_targets_by_severity_and_service() -> None:
    incidents = [
        # P1 acknowledged in 10m (target 15m), resolved in 2h (target 4h), detected 3m before
        incident(1, acknowledged_at=minutes(10), resolved_at=minutes(120), detected_at=minutes(-3),
                 status=Status.RESOLVED),
        # P1 acknowledged in 20m (late), resolved in 5h (late)
        incident(2, started_at=minutes(60), acknowledged_at=minutes(80), resolved_at=minutes(360),
                 status=Status.RESOLVED),
        # P0 on payments, never acknowledged, open for 6h: both targets missed
        incident(3, severity="P0", service="payments", started_at=minutes(0)),
    ]
    shown = report.incident_report(incidents, SETTINGS, since=T0 - timedelta(days=30), now=minutes(360))
    assert shown["overall"]["count"] == 3 and shown["overall"]["open"] == 1
    p0, p1 = shown["by_severity"]
    assert p1["severity"] == "P1" and p1["mtta"] == 900.0 and p1["mttr"] == (7200 + 18000) / 2
    assert p1["mttd"] == 180.0
    assert (p1["response_met"], p1["response_judged"]) == (1, 2)
    assert (p1["resolution_met"], p1["resolution_judged"]) == (1, 2)
    assert p1["response_target"] == 900 and p1["resolution_target"] == 14400
    assert p0["mtta"] is None and (p0["response_met"], p0["response_judged"]) == (0, 1)
    assert [s["service"] for s in shown["by_service"]] == ["orders", "payments"]
    early = report.incident_report(incidents, SETTINGS, since=minutes(30), now=minutes(360))
    assert early["overall"]["count"] == 1


def test_an_open_incident_inside_its_targets_is_not_judged_yet() -> None:
    shown = report.summarise([incident()], SETTINGS, now=minutes(5))
    assert shown["response_judged"] == 0 and shown["resolution_judged"] == 0


def test_incident_references_and_promised_times_are_read_as_people_write_them() -> None:
    assert parse_ref("12") == 12 and parse_ref("INC-12") == 12 and parse_ref("inc-3") == 3
    assert parse_ref("backend") is None
    assert parse_next_update("30m", T0) == minutes(30)
    assert parse_next_update("2026-03-03T15:00", T0) == minutes(60)
    with pytest.raises(ValueError, match="30m"):
        parse_next_update("soon", T0)


def test_notifications_of_one_incident_share_a_group_and_are_keyed_by_change() -> None:
    from opsplane.incidents import notices
    from opsplane.notify.models import Status as NotifyStatus

    opened = notices.change(incident(4), kind="incident.opened", at=T0)
    acked = notices.change(incident(4, commander="ana"), kind="incident.acknowledged", at=minutes(3))
    assert opened.group == acked.group == "incident:4" and opened.key != acked.key
    assert (opened.status, acked.status) == (NotifyStatus.TRIGGER, NotifyStatus.ACKNOWLEDGE)
    assert opened.title() == "[P1] orders: INC-4 opened: Checkout fails"
    first = notices.reminder(incident(4, commander="ana", next_update_at=minutes(30)))
    again = notices.reminder(incident(4, commander="ana", next_update_at=minutes(30)))
    later = notices.reminder(incident(4, commander="ana", next_update_at=minutes(60)))
    assert first.key == again.key != later.key and "ana" in first.summary
