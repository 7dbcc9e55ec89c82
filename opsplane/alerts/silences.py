"""Silences: matchers and a time window during which matching alerts are not notified.

A silence only mutes notifications; the alert itself keeps its state and stays visible, so
nobody loses sight of a fault because someone silenced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from opsplane.alerts.matchers import Matcher, matches_all, parse_matcher
from opsplane.errors import UsageError


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now >= self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE if now >= self.starts_at else SilenceState.PENDING

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether this silence mutes an alert with `labels` at `now`."""
        return self.state(now) is SilenceState.ACTIVE and matches_all(self.matchers, labels)


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> list[int]:
    """Ids of the silences muting an alert with `labels` at `now`."""
    return [silence.id for silence in silences if silence.mutes(labels, now)]


def validate(
    matchers: Sequence[str], *, comment: str, starts_at: datetime, ends_at: datetime, now: datetime
) -> tuple[Matcher, ...]:
    """The parsed matchers of a new silence; UsageError says what to change."""
    if not matchers:
        raise UsageError('a silence needs at least one matcher, such as alertname="HighErrorRate"')
    try:
        parsed = tuple(parse_matcher(text) for text in matchers)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if all(m.matches({}) for m in parsed):
        raise UsageError(
            "these matchers also match alerts without those labels, so the silence would mute "
            'everything; add a matcher that needs a value, such as service="orders"'
        )
    if not comment.strip():
        raise UsageError("a silence needs a comment saying why, for whoever finds it later")
    if ends_at <= starts_at:
        raise UsageError("a silence must end after it starts")
    if ends_at <= now:
        raise UsageError("that silence would already be over; give an end in the future")
    return parsed
