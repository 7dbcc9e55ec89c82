"""Values of the health domain: states and probe results. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """The result of a check, in the Nagios tradition."""

    OK = "OK"
    WARNING = "WARNING"
    UNKNOWN = "UNKNOWN"
    CRITICAL = "CRITICAL"

    @property
    def severity(self) -> int:
        """Order for 'worst of': OK < WARNING < UNKNOWN < CRITICAL."""
        return _SEVERITY[self]

    @property
    def exit_code(self) -> int:
        """What a script sees: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
        return _EXIT[self]


_SEVERITY = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}
_EXIT = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 3, State.CRITICAL: 2}


def worst(states: Iterable[State]) -> State:
    """The most severe of `states`; OK when there are none."""
    return max(states, key=lambda s: s.severity, default=State.OK)


Metric = float | int | str | None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one run of one check found.

    `reason` is a short sentence a person reads ("HTTP 503 in 12 ms", "refuses connections");
    `metrics` holds the detailed figures (latency, pool usage, memory, lag) by name.
    `duration` is how long the look took, in seconds: the network exchange itself when the
    probe timed it at its socket's callbacks (HTTP, TCP), else the whole run as run_probe saw it.
    """

    state: State
    reason: str
    duration: float = 0.0
    metrics: dict[str, Metric] = field(default_factory=dict)

    @classmethod
    def ok(cls, reason: str, **metrics: Metric) -> ProbeResult:
        return cls(State.OK, reason, metrics=metrics)

    @classmethod
    def critical(cls, reason: str, **metrics: Metric) -> ProbeResult:
        return cls(State.CRITICAL, reason, metrics=metrics)


@dataclass(frozen=True, slots=True)
class Threshold:
    """Warning and critical levels for one figure; `higher_is_worse` says which way is bad."""

    warning: float | None
    critical: float | None
    higher_is_worse: bool = True

    def judge(self, value: float) -> State:
        def beyond(limit: float | None) -> bool:
            if limit is None:
                return False
            return value >= limit if self.higher_is_worse else value <= limit

        if beyond(self.critical):
            return State.CRITICAL
        if beyond(self.warning):
            return State.WARNING
        return State.OK
