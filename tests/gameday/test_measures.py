"""The measures of a game day as a pure function of the event log and the time: what counts as
detection, a page, recovery and resolution, and how each is judged against its target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opsplane.gameday.measures import Judged, Signal, measure, verdict
from opsplane.incidents.models import DEFAULT_POLICIES

T0 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
TABLE = Judged(expect={"detect", "page"}, severity="P1", targets={},
               response={s: p.response_time for s, p in DEFAULT_POLICIES.items()},
               resolution={s: p.resolution_target for s, p in DEFAULT_POLICIES.items()})


def at(seconds: float, kind: str, service: str | None = "payments", outcome: str = "ok",
       **details: Any) -> Signal:
    return Signal(T0 + timedelta(seconds=seconds), kind, service, outcome, "payments/health", details)


def outage(*, page_after: float = 40.0) -> list[Signal]:
    """payments goes down at T0: a check fails, an alert fires, an incident opens and pages, a
    runbook restarts it, the incident is resolved."""
    return [
        at(-30, "check.state_changed", outcome="CRITICAL"),  # before the game day: not ours
        at(3.5, "check.state_changed", outcome="OK"),
        at(4.0, "check.state_changed", outcome="CRITICAL"),
        at(6.0, "alert.firing", outcome="firing"),
        at(7.0, "incident.opened", incident=12, severity="P1"),
        at(page_after, "notify.delivered", outcome="delivered", key="escalation:12:page:r0:s0:ana:sms",
           channel="sms"),
        at(90.0, "runbook.finished", service=None, outcome="ok", incident=12, run=3, runbook="service-down"),
        at(600.0, "incident.resolved", incident=12, severity="P1"),
    ]


def test_each_measure_is_the_first_matching_event_after_the_injection() -> None:
    found = measure(outage(), injected_at=T0, watched={"payments"}, judged=TABLE, now=T0 + timedelta(hours=1),
                    finished=True)
    assert {m.name: m.seconds for m in found.measures} == {"detect": 4.0, "page": 40.0, "recover": 90.0,
                                                           "resolve": 600.0}
    assert found.incidents == (12,) and found.severity == "P1"
    assert found.get("detect").evidence == "check payments/health turned CRITICAL"


def test_targets_come_from_the_incidents_severity_in_the_manuals_table() -> None:
    found = measure(outage(), injected_at=T0, watched={"payments"}, judged=TABLE, now=T0 + timedelta(hours=1),
                    finished=True)
    # P1: respond within 15 minutes, resolve within 4 hours
    assert [m.target for m in found.measures] == [900.0, 900.0, 14400.0, 14400.0]
    assert [m.verdict for m in found.measures] == ["pass", "pass", "pass", "pass"]
    assert verdict(found, undone=True) == "pass"
    assert verdict(found, undone=False) == "fail"  # a fault left in force fails the game day


def test_a_page_later_than_the_scenarios_own_target_fails() -> None:
    judged = Judged(expect={"detect", "page"}, severity="P1", targets={"page": 30.0},
                    response=TABLE.response, resolution=TABLE.resolution)
    found = measure(outage(page_after=45.0), injected_at=T0, watched={"payments"}, judged=judged,
                    now=T0 + timedelta(minutes=5), finished=True)
    assert (found.get("page").verdict, found.get("page").target) == ("fail", 30.0)
    assert not found.passed


def test_a_missing_measure_waits_until_its_target_passes_or_the_game_day_ends() -> None:
    only_detected = outage()[:3]
    early = measure(only_detected, injected_at=T0, watched={"payments"}, judged=TABLE,
                    now=T0 + timedelta(minutes=1), finished=False)
    assert early.get("page").verdict == "waiting"
    late = measure(only_detected, injected_at=T0, watched={"payments"}, judged=TABLE,
                   now=T0 + timedelta(minutes=16), finished=False)
    assert late.get("page").verdict == "fail"  # P1's 15 minutes passed without a page
    ended = measure(only_detected, injected_at=T0, watched={"payments"}, judged=TABLE,
                    now=T0 + timedelta(minutes=2), finished=True)
    assert ended.get("page").verdict == "fail"
    assert ended.get("resolve").verdict == "not expected"  # not expected: absent does not fail


def test_signals_about_other_components_and_other_incidents_do_not_count() -> None:
    signals = [
        at(2.0, "check.state_changed", service="catalog", outcome="CRITICAL"),
        at(3.0, "incident.opened", service="catalog", incident=5, severity="P0"),
        at(4.0, "notify.delivered", service="catalog", outcome="delivered",
           key="escalation:5:page:r0:s0:ana:sms"),
        at(5.0, "incident.resolved", service="catalog", incident=5),
        at(6.0, "check.state_changed", outcome="OK"),  # a check of payments that recovered is no detection
    ]
    found = measure(signals, injected_at=T0, watched={"payments"}, judged=TABLE,
                    now=T0 + timedelta(minutes=1), finished=True)
    assert found.seen == frozenset() and found.incidents == ()
    assert found.severity == "P1"  # no incident of ours: the scenario's severity
    widened = measure(signals, injected_at=T0, watched={"payments", "catalog"}, judged=TABLE,
                      now=T0 + timedelta(minutes=1), finished=True)
    assert widened.severity == "P0" and widened.get("page").seconds == 4.0
    assert widened.get("detect").target == 300.0  # P0: respond within 5 minutes
