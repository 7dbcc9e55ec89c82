"""State changes: only a change of state is a transition, and a restart remembers."""

from __future__ import annotations

from opsplane.clock import ManualClock
from opsplane.health.models import ProbeResult, State
from opsplane.health.transitions import KnownState, StateTracker


def test_first_result_is_a_transition_from_nothing() -> None:
    clock = ManualClock()
    change = StateTracker().observe("db/postgres", "db", ProbeResult(State.OK, "ready"), clock.now())
    assert change is not None and change.previous is None and change.current is State.OK


def test_same_state_again_is_not_a_transition_even_with_another_reason() -> None:
    clock = ManualClock()
    tracker = StateTracker()
    tracker.observe("db/postgres", "db", ProbeResult(State.OK, "ready in 2 ms"), clock.now())
    clock.advance(10)
    assert tracker.observe("db/postgres", "db", ProbeResult(State.OK, "ready in 3 ms"), clock.now()) is None


def test_change_reports_previous_and_current_and_moves_since() -> None:
    clock = ManualClock()
    tracker = StateTracker()
    tracker.observe("db/postgres", "db", ProbeResult(State.OK, "ready"), clock.now())
    clock.advance(30)
    down = ProbeResult(State.CRITICAL, "refuses connections")
    change = tracker.observe("db/postgres", "db", down, clock.now())
    assert change is not None
    assert (change.previous, change.current, change.reason) == (
        State.OK, State.CRITICAL, "refuses connections")
    assert tracker.known["db/postgres"].since == clock.now()


def test_known_state_from_before_a_restart_suppresses_a_repeat() -> None:
    clock = ManualClock()
    tracker = StateTracker({"db/postgres": KnownState(State.CRITICAL, clock.now())})
    clock.advance(60)
    still = ProbeResult(State.CRITICAL, "still down")
    assert tracker.observe("db/postgres", "db", still, clock.now()) is None
    change = tracker.observe("db/postgres", "db", ProbeResult(State.OK, "ready"), clock.now())
    assert change is not None and change.previous is State.CRITICAL
