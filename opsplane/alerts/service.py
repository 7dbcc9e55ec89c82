"""Alert states, silences and the notification log in the store, plus their events.

The control plane loads `get_all` on start and stores what each evaluation changed with
`save_changes`, so after a restart a pending alert keeps counting its `for` from when it
really started and a firing alert is neither lost nor announced again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from opsplane.alerts import silences
from opsplane.alerts.intake import ReceivedAlert
from opsplane.alerts.matchers import parse_matcher
from opsplane.alerts.routing import Notification, SentNotification
from opsplane.alerts.silences import Silence
from opsplane.alerts.state import RULE_SOURCE, Alert, AlertState, Transition
from opsplane.alerts.tables import AlertRow, NotificationRow, SilenceRow
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.store.fit import fit
from opsplane.units import format_value

ACTOR = "alerting"
VALUE_REFRESH = timedelta(minutes=1)
"""How stale a firing alert's stored value may grow before a change of it is written."""


def get_all(session: Session) -> list[Alert]:
    """Every stored alert (pending, firing and recently resolved), oldest activation first."""
    rows = session.scalars(select(AlertRow).order_by(AlertRow.active_at, AlertRow.fingerprint))
    return [_alert(row) for row in rows]


def save_changes(
    session: Session, *, stored: Mapping[str, Alert], alerts: Iterable[Alert], dropped: Iterable[str],
    now: datetime,
) -> dict[str, Alert]:
    """Write what changed in `alerts` against `stored` (the alerts as the store holds them, by
    fingerprint), forget the `dropped` fingerprints, and return what the store holds now.

    A new alert and a change of state or of a time the state machine reads (active, fired,
    resolved, keep-firing, end) is written at once: a restarted evaluator resumes from them.
    A change of value alone is written when the value as people read it changed (its text
    in the rule's unit; the annotations rendered from it go along) and the row is at least
    VALUE_REFRESH old. Only readers of the store (`opsplane alerts`, the dashboard) see the
    stored value, and a minute is the staleness Alertmanager's users know from Prometheus's
    re-sends; the evaluator itself never reads it back, it evaluates again.
    """
    held = dict(stored)
    gone = [key for key in dropped if key in held]
    if gone:
        session.execute(delete(AlertRow).where(AlertRow.fingerprint.in_(gone)))
        for key in gone:
            del held[key]
    new, changed = [], []
    for alert in alerts:
        before = held.get(alert.fingerprint)
        if before is None:
            new.append(alert)
        elif _must_write(before, alert, now):
            changed.append(alert)
    # Many rows in one executemany each: the rows of a burst of alerts cost one round trip.
    if new:
        session.execute(insert(AlertRow), [_values(a) for a in new])
    if changed:
        session.execute(update(AlertRow), [_values(a) for a in changed])
    for alert in (*new, *changed):
        held[alert.fingerprint] = alert
    return held


def _must_write(before: Alert, after: Alert, now: datetime) -> bool:
    if _lasting(before) != _lasting(after):
        return True
    if after.source != RULE_SOURCE:  # a received alert's text is the sender's, not a value's
        return before.annotations != after.annotations
    shown = format_value(before.value, before.unit) != format_value(after.value, after.unit)
    return shown and now - before.last_seen_at >= VALUE_REFRESH


def _lasting(alert: Alert) -> tuple[object, ...]:
    """What a restarted evaluator resumes from."""
    return (alert.state, alert.active_at, alert.fired_at, alert.resolved_at, alert.keep_firing_since,
            alert.ends_at, alert.unit, alert.generator_url, alert.rule)


def record_transitions(
    session: Session, *, transitions: Sequence[Transition], at: datetime,
    senders: Mapping[str, str] | None = None,
) -> None:
    """One event per change of state: alert.pending, alert.firing, alert.resolved, alert.inactive,
    with the `reason` when it is not the series (its rule was changed or removed).
    A received alert's event also names its source, its generator URL and, from `senders`
    (by fingerprint), who sent the alert or its resolve."""
    for change in transitions:
        alert = change.alert
        received: dict[str, object] = {}
        if alert.source != RULE_SOURCE:
            received = {"source": alert.source, "generator_url": alert.generator_url}
            if senders and alert.fingerprint in senders:
                received["sender"] = senders[alert.fingerprint]
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
                **({"unit": alert.unit} if alert.unit else {}),
                "from": change.before.value,
                "annotations": dict(alert.annotations),
                **({"reason": change.reason} if change.reason else {}),
                **received,
            },
            ts=at,
        )


def record_rule_error(session: Session, *, rule: str, error: str | None, at: datetime) -> None:
    """`alert.rule_failed` when a rule starts failing to evaluate (or fails differently),
    `alert.rule_recovered` (error None) when it evaluates again."""
    events.record(
        session, kind="alert.rule_failed" if error else "alert.rule_recovered", actor=ACTOR, target=rule,
        outcome="failed" if error else "ok", details={"error": error} if error else {}, ts=at,
    )


def record_intake_dropped(session: Session, *, alert: ReceivedAlert, error: str, at: datetime) -> None:
    """`alert.intake_dropped`: a received alert the store refused, dropped rather than tried
    again every cycle (its sender sends it again while it fires). The labels and texts are
    the event's details; the store's reason is `error`."""
    events.record(
        session, kind="alert.intake_dropped", actor=ACTOR, target=alert.labels.get("alertname", "?"),
        service=alert.labels.get("service"), outcome="dropped", ts=at,
        details={"labels": dict(alert.labels), "annotations": dict(alert.annotations),
                 "generator_url": alert.generator_url, "sender": alert.sender, "error": error},
    )


def _values(alert: Alert) -> dict[str, Any]:
    return fit(AlertRow, {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "labels": dict(alert.labels),
        "state": alert.state.value,
        "value": None if math.isnan(alert.value) else alert.value,
        "annotations": dict(alert.annotations),
        "active_at": alert.active_at,
        "last_seen_at": alert.last_seen_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "keep_firing_since": alert.keep_firing_since,
        "source": alert.source,
        "ends_at": alert.ends_at,
        "generator_url": alert.generator_url,
        "unit": alert.unit,
    })


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
        ends_at=row.ends_at,
        source=row.source,
        generator_url=row.generator_url,
        unit=row.unit,
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


# --- the notification log -------------------------------------------------------------------


def get_notification_log(session: Session) -> dict[tuple[str, str], SentNotification]:
    """The last notification of every group to every receiver, by (receiver, group id)."""
    log = {}
    for row in session.scalars(select(NotificationRow)):
        log[(row.receiver, row.group_id)] = SentNotification(
            receiver=row.receiver, group_id=row.group_id, group_key=row.group_key, sent_at=row.sent_at,
            firing=frozenset(row.firing), resolved=frozenset(row.resolved),
        )
    return log


def record_notification(
    session: Session, *, notification: Notification, at: datetime, webhook: str | None = None
) -> SentNotification:
    """Enter a delivered notification in the log and the event log (`alert.notified`)."""
    sent = notification.record(at)
    session.merge(NotificationRow(
        receiver=sent.receiver, group_id=sent.group_id, group_key=sent.group_key, sent_at=sent.sent_at,
        firing=sorted(sent.firing), resolved=sorted(sent.resolved),
    ))
    events.record(
        session, kind="alert.notified", actor=ACTOR, target=notification.receiver,
        service=_common(notification, "service"), outcome="sent", ts=at,
        details={**summary(notification), **({"webhook": webhook} if webhook else {})},
    )
    return sent


def record_failed_delivery(session: Session, *, notification: Notification, at: datetime, error: str) -> None:
    """A webhook that could not be reached: the notification stays due and is tried again."""
    events.record(
        session, kind="alert.notify_failed", actor=ACTOR, target=notification.receiver,
        service=_common(notification, "service"), outcome="failed", ts=at,
        details={**summary(notification), "error": error},
    )


def summary(notification: Notification) -> dict[str, object]:
    """What an event says about a notification: the group, its alerts and the root causes."""
    return {
        "group": dict(notification.group_labels),
        "firing": [_brief(a) for a in notification.firing],
        "resolved": [_brief(a) for a in notification.resolved],
        "explains": [
            {"alert": _brief(i.target), "root_cause": i.cause.name, "root_cause_labels": dict(i.cause.labels)}
            for i in notification.explains
        ],
    }


def _brief(alert: Alert) -> dict[str, object]:
    return {"name": alert.name, "labels": dict(alert.labels), "fingerprint": alert.fingerprint,
            "summary": alert.annotations.get("summary")}


def _common(notification: Notification, label: str) -> str | None:
    values = {a.labels.get(label) for a in (*notification.firing, *notification.resolved)}
    return values.pop() if len(values) == 1 else None
