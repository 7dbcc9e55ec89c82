"""Restart decisions and the back-off schedule, as pure functions of history and time."""

from __future__ import annotations

import pytest

from opsplane.runtime.restarts import RestartPolicy, Run, backoff_delay, decide


def crashes(count: int, *, start: float = 0.0, length: float = 1.0, gap: float = 0.0) -> list[Run]:
    """`count` failed runs of `length` seconds, one after the other."""
    runs, t = [], start
    for _ in range(count):
        runs.append(Run(t, t + length, failed=True))
        t += length + gap
    return runs


def test_backoff_doubles_from_one_second_up_to_the_one_minute_cap() -> None:
    policy = RestartPolicy()

    delays = [backoff_delay(policy, crashes(n)) for n in range(1, 10)]

    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_run_longer_than_reset_after_starts_the_series_again() -> None:
    policy = RestartPolicy(reset_after=30)
    history = crashes(5) + [Run(100, 131, failed=True)]

    assert backoff_delay(policy, history) == 1
    assert backoff_delay(policy, history + crashes(1, start=132)) == 1
    assert backoff_delay(policy, history + crashes(2, start=132)) == 2


def test_a_run_just_short_of_reset_after_still_counts_as_a_crash_in_a_row() -> None:
    policy = RestartPolicy(reset_after=30)

    assert backoff_delay(policy, crashes(3) + [Run(10, 39.9, failed=True)]) == 8


def test_factor_and_initial_come_from_the_policy() -> None:
    policy = RestartPolicy(initial=0.5, factor=3, max_delay=10)

    assert [backoff_delay(policy, crashes(n)) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10]


def test_on_failure_restarts_a_crash_after_the_backoff() -> None:
    decision = decide(RestartPolicy(), crashes(2), now=2.0)

    assert decision.restart and decision.delay == 2 and decision.state == "backoff"
    assert decision.reason == "restart in 2s"


def test_on_failure_leaves_a_clean_exit_stopped() -> None:
    decision = decide(RestartPolicy(mode="on-failure"), [Run(0, 5, failed=False)], now=5)

    assert not decision.restart and decision.state == "stopped" and decision.reason == "exited cleanly"


def test_always_restarts_even_a_clean_exit() -> None:
    decision = decide(RestartPolicy(mode="always"), [Run(0, 5, failed=False)], now=5)

    assert decision.restart and decision.delay == 1


def test_never_leaves_a_crash_failed() -> None:
    decision = decide(RestartPolicy(mode="never"), crashes(1), now=1)

    assert not decision.restart and decision.state == "failed"
    assert decide(RestartPolicy(mode="never"), [Run(0, 1, False)], now=1).state == "stopped"


def test_more_exits_than_max_restarts_within_the_window_gives_up() -> None:
    policy = RestartPolicy(max_restarts=3, window=60)

    third = decide(policy, crashes(3, gap=1), now=6)
    fourth = decide(policy, crashes(4, gap=1), now=8)

    assert third.restart and not third.gave_up
    assert not fourth.restart and fourth.state == "failed" and fourth.gave_up
    assert "4 exits within 60s" in fourth.reason


def test_exits_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(max_restarts=3, window=60)
    history = crashes(3, start=0, gap=1) + crashes(1, start=100)

    assert decide(policy, history, now=101).restart


def test_clean_exits_only_count_towards_max_restarts_under_always() -> None:
    clean = [Run(t, t + 1, failed=False) for t in range(0, 10, 2)]

    assert not decide(RestartPolicy(mode="always", max_restarts=3), clean, now=10).restart
    assert decide(RestartPolicy(mode="on-failure", max_restarts=3), clean, now=10).state == "stopped"


def test_decide_needs_the_run_that_ended() -> None:
    with pytest.raises(ValueError):
        decide(RestartPolicy(), [], now=0)
