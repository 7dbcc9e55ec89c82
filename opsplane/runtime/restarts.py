"""When an exited instance is started again, and after how long.

Pure functions of the instance's run history and the current (monotonic) time, so the
supervisor and the tests get the same answers without sleeping.

The wait before a restart grows with the crashes in a row: `initial * factor^(n-1)` for the
n-th, at most `max_delay`. A run that lasted `reset_after` or longer ends the series. With
`max_restarts` set, an instance that exited more than that many times within `window`
seconds is given up on and marked failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

RestartMode = Literal["always", "on-failure", "never"]


@dataclass(frozen=True)
class RestartPolicy:
    """What the inventory's `run.restart`, `run.backoff` and `run.max_restarts` say."""

    mode: RestartMode = "on-failure"
    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    reset_after: float = 30.0
    max_restarts: int | None = None
    window: float = 600.0


@dataclass(frozen=True)
class Run:
    """One run of an instance, in monotonic seconds; `failed` is a non-zero exit, a signal or a
    program that could not be started."""

    started: float
    ended: float
    failed: bool

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class Decision:
    """What to do after an exit: restart after `delay` seconds, or settle in `state`."""

    restart: bool
    delay: float
    state: Literal["backoff", "failed", "stopped"]
    reason: str
    gave_up: bool = False  # failed because of max_restarts


def crashes_in_a_row(policy: RestartPolicy, history: Sequence[Run]) -> int:
    """How many runs at the end of `history` were shorter than `reset_after` (at least 1)."""
    count = 0
    for run in reversed(history):
        if run.duration >= policy.reset_after:
            break
        count += 1
    return max(count, 1)


def backoff_delay(policy: RestartPolicy, history: Sequence[Run]) -> float:
    """Seconds to wait before the restart that follows the last run of `history`."""
    streak = crashes_in_a_row(policy, history)
    # exponent capped so a long series cannot overflow a float before the max_delay cap applies
    delay = policy.initial * policy.factor ** min(streak - 1, 64)
    return min(delay, policy.max_delay)


def exits_in_window(policy: RestartPolicy, history: Sequence[Run], now: float) -> int:
    """Exits within the last `window` seconds that the policy would restart."""
    return sum(
        1 for run in history
        if run.ended >= now - policy.window and (run.failed or policy.mode == "always")
    )


def decide(policy: RestartPolicy, history: Sequence[Run], now: float) -> Decision:
    """The decision after the last run of `history` ended; `now` is monotonic seconds."""
    if not history:
        raise ValueError("decide needs the run that just ended")
    last = history[-1]
    if policy.mode == "never" or (policy.mode == "on-failure" and not last.failed):
        state: Literal["failed", "stopped"] = "failed" if last.failed else "stopped"
        reason = "restart policy is never" if policy.mode == "never" else "exited cleanly"
        return Decision(False, 0.0, state, reason)
    if policy.max_restarts is not None:
        recent = exits_in_window(policy, history, now)
        if recent > policy.max_restarts:
            return Decision(
                False, 0.0, "failed",
                f"{recent} exits within {policy.window:g}s, more than max_restarts "
                f"({policy.max_restarts}): given up",
                gave_up=True,
            )
    delay = backoff_delay(policy, history)
    return Decision(True, delay, "backoff", f"restart in {delay:g}s")
