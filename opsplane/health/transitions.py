"""Which results are state changes. Pure: the last known states in, transitions out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsplane.health.models import ProbeResult, State


@dataclass(frozen=True, slots=True)
class KnownState:
    state: State
    since: datetime


@dataclass(frozen=True, slots=True)
class Transition:
    check_id: str
    component: str
    previous: State | None
    current: State
    reason: str
    at: datetime


class StateTracker:
    """Remembers each check's state and reports a Transition when a result changes it."""

    def __init__(self, known: dict[str, KnownState] | None = None) -> None:
        self.known: dict[str, KnownState] = dict(known or {})

    def observe(
        self, check_id: str, component: str, result: ProbeResult, at: datetime
    ) -> Transition | None:
        """The transition `result` makes, or None when the state is unchanged."""
        before = self.known.get(check_id)
        if before is not None and before.state is result.state:
            return None
        self.known[check_id] = KnownState(result.state, at)
        return Transition(
            check_id=check_id,
            component=component,
            previous=before.state if before else None,
            current=result.state,
            reason=result.reason,
            at=at,
        )
