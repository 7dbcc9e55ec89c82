"""Alert states, silences and the notification log in the store, plus their events.

The control plane loads `get_all` on start and saves each evaluation's result with
`save_all`, so after a restart a pending alert keeps counting its `for` from when it
really started and a firing alert is neither lost nor announced again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsplane.alerts import silences
from opsplane.alerts.matchers import parse_matcher
from opsplane.alerts.silences import Silence
from opsplane.alerts.state import Alert, AlertState, Transition
from opsplane.alerts.tables import AlertRow, SilenceRow
from opsplane.errors import UsageError
from opsplane.events import service as events

ACTOR = "alerting"


def get_all(session: Session) -> list[Alert]:
    """Every stored alert (pending, firing and recently resolved), oldest activation first."""
    rows = session.scalars(select(AlertRow).order_by(AlertRow.active_at, AlertRow.fingerprint))
    return [_alert(row) for row in rows]


def save_all(session: Session, *, alerts: Iterable[Alert], dropped: Iterable[str]) -> None:
    """Store `alerts` as they are now and forget the `dropped` fingerprints."""
    gone = list(dropped)
    if gone:
        session.execute(delete(AlertRow).where(AlertRow.fingerprint.in_(gone)))
    for alert in alerts:
        session.merge(_row(alert))


def record_transitions(session: Session, *, transitions: Sequence[Transition], at: datetime) -> None:
    """One event per change of state: alert.pending, alert.firing, alert.resolved, alert.inactive."""
    for change in transitions:
        alert = change.alert
        events.record(
            session,
            kind=f"alert.{change.after.value}",
            actor=ACTOR,
            target=alert.name,
            service=alert.labels.get("service"),
            outcome=change.after.value,
            details={
                "fingerprint": alert.fingerprint,
                "labels": dict(alert.labels),
                "value": None if math.isnan(alert.value) else alert.value,
                "from": change.before.value,
                "annotations": dict(alert.annotations),
            },
            ts=at,
        )


def _row(alert: Alert) -> AlertRow:
    return AlertRow(
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        labels=dict(alert.labels),
        state=alert.state.value,
        value=None if math.isnan(alert.value) else alert.value,
        annotations=dict(alert.annotations),
        active_at=alert.active_at,
        last_seen_at=alert.last_seen_at,
        fired_at=alert.fired_at,
        resolved_at=alert.resolved_at,
        keep_firing_since=alert.keep_firing_since,
    )


def _alert(row: AlertRow) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        rule=row.rule,
        labels=dict(row.labels),
        state=AlertState(row.state),
        value=math.nan if row.value is None else row.value,
        annotations=dict(row.annotations),
        active_at=row.active_at,
        last_seen_at=row.last_seen_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        keep_firing_since=row.keep_firing_since,
    )


# --- silences ------------------------------------------------------------------------------


def create_silence(
    session: Session,
    *,
    matchers: Sequence[str],
    author: str,
    comment: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    actor: str,
) -> Silence:
    """Store a new silence and record `silence.created`; UsageError for a silence that
    would mute everything, has no comment, or is already over."""
    parsed = silences.validate(matchers, comment=comment, starts_at=starts_at, ends_at=ends_at, now=now)
    row = SilenceRow(
        matchers=[str(m) for m in parsed], author=author, comment=comment.strip(),
        starts_at=starts_at, ends_at=ends_at, created_at=now,
    )
    session.add(row)
    session.flush()
    events.record(session, kind="silence.created", actor=actor, target=f"silence/{row.id}",
                  outcome="ok", details=row.as_dict(), ts=now)
    return _silence(row)


def get_silences(session: Session, *, now: datetime, include_expired: bool = False) -> list[Silence]:
    """Silences that are active or yet to start at `now` (and expired ones when asked), by id."""
    query = select(SilenceRow).order_by(SilenceRow.id)
    if not include_expired:
        query = query.where(SilenceRow.ends_at > now)
    return [_silence(row) for row in session.scalars(query)]


def expire_silence(session: Session, *, silence_id: int, now: datetime, actor: str) -> Silence:
    """End a silence now and record `silence.expired`; UsageError when there is no such
    silence or it has already ended."""
    row = session.get(SilenceRow, silence_id)
    if row is None:
        raise UsageError(f"no silence {silence_id}; `opsplane silence list --all` shows them")
    if row.ends_at <= now:
        raise UsageError(f"silence {silence_id} already ended at {row.ends_at.isoformat()}")
    row.starts_at = min(row.starts_at, now)
    row.ends_at = now
    events.record(session, kind="silence.expired", actor=actor, target=f"silence/{row.id}",
                  outcome="ok", details=row.as_dict(), ts=now)
    return _silence(row)


def _silence(row: SilenceRow) -> Silence:
    return Silence(
        id=row.id, matchers=tuple(parse_matcher(text) for text in row.matchers), author=row.author,
        comment=row.comment, starts_at=row.starts_at, ends_at=row.ends_at, created_at=row.created_at,
    )
