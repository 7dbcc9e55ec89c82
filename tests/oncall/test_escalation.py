"""Escalation timing with an injected clock: the manual's P0 route minute by minute, an
acknowledgement that stops it, repeats, and whom each step reaches."""

from __future__ import annotations

from datetime import timedelta

from opsplane.clock import ManualClock
from opsplane.oncall import escalation
from opsplane.oncall.models import ContactKind, EscalationPolicy, OncallSettings
from opsplane.oncall.rotation import Roster
from tests.oncall.factories import T0, oncall_settings

MINUTE = timedelta(minutes=1)


def _p0() -> tuple[EscalationPolicy, Roster]:
    settings = oncall_settings()
    return settings.policy_for("P0"), Roster(settings)


def _who(notification: escalation.Notification) -> list[str]:
    return [r.name for r in notification.recipients]


def test_a_p0_pages_the_primary_then_the_secondary_then_up_the_escalation_matrix_minute_by_minute() -> None:
    policy, roster = _p0()
    clock = ManualClock(T0)
    seen: dict[int, list[str]] = {}
    for minute in range(0, 91):
        due = escalation.due(policy, roster, triggered_at=T0, now=clock.now())
        for notification in due:
            seen.setdefault(int(notification.offset / MINUTE), _who(notification))
        assert len(due) == sum(1 for at in (0, 5, 30, 45, 60) if at <= minute), f"minute {minute}"
        clock.advance(60)
    assert seen == {
        0: ["ana", "incidents"],
        5: ["ben"],
        30: ["tina"],
        45: ["paul"],
        60: ["vera"],
    }


def test_the_p0_page_goes_by_pagerduty_sms_and_phone_and_posts_in_incidents() -> None:
    policy, roster = _p0()
    first = escalation.due(policy, roster, triggered_at=T0, now=T0)[0]
    ana, channel = first.recipients
    assert ana.contacts == ((ContactKind.PAGERDUTY, "PANA"), (ContactKind.SMS, "+15550101"),
                            (ContactKind.PHONE, "+15550101"))
    assert (ana.display_name, ana.because, ana.problem) == ("Ana Silva", "primary of platform", None)
    assert (channel.kind, channel.name) == ("channel", "incidents")


def test_an_ack_at_minute_three_stops_every_later_step() -> None:
    policy, roster = _p0()
    clock = ManualClock(T0)
    acked_at = T0 + 3 * MINUTE
    for _ in range(120):
        clock.advance(60)
        due = escalation.due(policy, roster, triggered_at=T0, now=clock.now(), acked_at=acked_at)
        assert [n.step for n in due] == [0]
    assert escalation.next_due(policy, triggered_at=T0, now=T0 + 2 * MINUTE) == T0 + 5 * MINUTE
    assert escalation.next_due(policy, triggered_at=T0, now=T0 + 3 * MINUTE, acked_at=acked_at) is None


def test_an_ack_at_the_instant_a_step_falls_due_answers_it() -> None:
    policy, roster = _p0()
    due = escalation.due(policy, roster, triggered_at=T0, now=T0 + 10 * MINUTE, acked_at=T0 + 5 * MINUTE)
    assert [n.step for n in due] == [0]


def test_a_p1_waits_fifteen_minutes_before_the_secondary_and_stops_at_the_team_lead() -> None:
    settings = oncall_settings()
    times = [p.offset for p in escalation.plan(settings.policy_for("P1"), triggered_at=T0)]
    assert times == [timedelta(0), 15 * MINUTE, 30 * MINUTE]
    due = escalation.due(settings.policy_for("P1"), Roster(settings), triggered_at=T0,
                         now=T0 + 4 * 60 * MINUTE)
    assert [_who(n) for n in due] == [["ana", "alerts"], ["ben"], ["tina"]]


def test_repeat_runs_the_steps_again_after_repeat_after() -> None:
    settings = oncall_settings(policies={"loud": {
        "steps": [{"notify": ["layer:primary"]}, {"delay": "5m", "notify": ["layer:secondary"]}],
        "repeat": 2, "repeat_after": "10m"}})
    policy = settings.all_policies()["loud"]
    due = escalation.due(policy, Roster(settings), triggered_at=T0, now=T0 + 24 * 60 * MINUTE)
    assert [(int(n.offset / MINUTE), n.round, n.step) for n in due] == [
        (0, 0, 0), (5, 0, 1), (15, 1, 0), (20, 1, 1), (30, 2, 0), (35, 2, 1)]
    assert escalation.next_due(policy, triggered_at=T0, now=T0 + 35 * MINUTE) is None


def test_each_step_pages_whoever_is_on_call_when_it_falls_due() -> None:
    settings = oncall_settings(policies={"again": {"steps": [
        {"notify": ["layer:primary"]}, {"delay": "10m", "notify": ["layer:primary"]}]}})
    handoff = T0.replace(day=9, hour=8, minute=0)  # Monday 09:00 in Berlin: ana hands to ben
    due = escalation.due(settings.all_policies()["again"], Roster(settings),
                         triggered_at=handoff - 5 * MINUTE, now=handoff + MINUTE * 60)
    assert [_who(n) for n in due] == [["ana"], ["ben"]]


def test_a_person_without_the_steps_contact_methods_is_reported_not_dropped() -> None:
    settings = oncall_settings(roles={"team_lead": "dan", "platform_lead": "paul",
                                      "vp_engineering": "vera"})
    due = escalation.due(settings.policy_for("P0"), Roster(settings), triggered_at=T0,
                         now=T0 + 30 * MINUTE)
    lead = due[-1].recipients[0]
    assert lead.name == "dan" and lead.contacts == ()
    assert lead.problem == "dan has none of the contact methods pagerduty, sms, phone"


def test_without_an_oncall_section_the_defaults_say_whom_they_could_not_find() -> None:
    settings = OncallSettings()
    due = escalation.due(settings.policy_for("P0"), Roster(settings), triggered_at=T0, now=T0 + 60 * MINUTE)
    assert len(due) == 5
    primary, channel = due[0].recipients
    assert (primary.kind, primary.problem) == ("unresolved", "no on-call schedule is defined")
    assert channel.name == "incidents"
    assert due[2].recipients[0].problem == "no one holds the role 'team_lead'"


def test_an_inventory_policy_replaces_the_built_in_one_of_the_same_name() -> None:
    settings = oncall_settings(policies={"p0": {"steps": [{"notify": ["person:dan"], "via": ["email"]}]}},
                               severities={"P2": "p0"})
    assert len(settings.policy_for("P0").steps) == 1
    assert settings.policy_name_for("P2") == "p0"
    assert settings.policy_name_for("P1") == "p1"


def test_nothing_is_owed_once_the_incident_is_settled_even_steps_that_fell_due_before() -> None:
    policy, _ = _p0()
    owed = escalation.owed(policy, triggered_at=T0, now=T0 + 40 * MINUTE, settled_at=T0 + 10 * MINUTE)
    at_the_instant = escalation.owed(policy, triggered_at=T0, now=T0 + 5 * MINUTE, settled_at=T0 + 5 * MINUTE)
    assert (owed, at_the_instant) == ([], [])


def test_until_it_is_settled_every_due_step_is_owed_in_time_order() -> None:
    policy, _ = _p0()
    owed = escalation.owed(policy, triggered_at=T0, now=T0 + 30 * MINUTE, settled_at=T0 + 31 * MINUTE)
    assert [(int(p.offset / MINUTE), p.step) for p in owed] == [(0, 0), (5, 1), (30, 2)]
    assert escalation.owed(policy, triggered_at=T0, now=T0 + 30 * MINUTE) == owed


def test_a_step_whose_later_round_is_due_is_not_owed_again() -> None:
    settings = oncall_settings(policies={"loud": {
        "steps": [{"notify": ["layer:primary"]}, {"delay": "5m", "notify": ["layer:secondary"]}],
        "repeat": 2, "repeat_after": "10m"}})  # rounds at 0/5, 15/20, 30/35
    owed = escalation.owed(settings.all_policies()["loud"], triggered_at=T0, now=T0 + 32 * MINUTE)
    assert [(p.round, p.step) for p in owed] == [(1, 1), (2, 0)]
