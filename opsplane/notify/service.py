"""The outbox's plain functions over a session: enqueue, read, and the digest's bookkeeping.

`enqueue` runs in the caller's transaction, so a notification lands in the store together with
the alert or incident change that caused it, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from difflib import get_close_matches

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsplane.alerts.models import Severity
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.notify.models import ChannelsSettings, Notification, Status
from opsplane.notify.tables import OutboxRow

ACTOR = "system:notify"


@dataclass(frozen=True)
class Enqueued:
    """What became of a notification on one channel."""

    channel: str
    row_id: int | None  # None when it was muted and nothing was queued
    new: bool  # False when the same key was already queued (a repeat)


def enqueue(
    session: Session,
    *,
    notification: Notification,
    channels: Iterable[str],
    settings: ChannelsSettings,
    now: datetime,
    muted: bool = False,
) -> list[Enqueued]:
    """Queue `notification` for each of `channels`; the same key on the same channel is kept once.

    A muted (silenced) trigger or acknowledge is not queued; a muted resolve still is when the
    channel was told of the group, because a responder paged for a trigger must hear that it
    is over. P3 notifications on a channel with `digest` are held for the next digest.
    """
    results = []
    for channel in channels:
        if channel not in settings.named:
            raise UsageError(_unknown(channel, settings))
        if muted and not _must_follow(session, notification, channel):
            events.record(session, kind="notify.muted", actor=ACTOR, target=f"{channel}:{notification.key}",
                          outcome="muted", service=notification.service, ts=now,
                          details={"channel": channel, "key": notification.key,
                                   "group": notification.group, "status": notification.status.value})
            results.append(Enqueued(channel, None, False))
            continue
        held = notification.severity is Severity.P3 and settings.named[channel].digest
        results.append(insert_row(session, notification, channel, now, "held" if held else "pending"))
    return results


def _must_follow(session: Session, notification: Notification, channel: str) -> bool:
    """A muted resolve goes out when a trigger of its group was queued on the channel."""
    if notification.status is not Status.RESOLVE:
        return False
    query = select(func.count()).select_from(OutboxRow).where(
        OutboxRow.channel == channel, OutboxRow.group_key == notification.group,
        OutboxRow.status == Status.TRIGGER.value)
    return bool(session.scalar(query))


def insert_row(session: Session, notification: Notification, channel: str, now: datetime,
            state: str) -> Enqueued:
    values = {
        "channel": channel, "key": notification.key, "group_key": notification.group,
        "recipient": notification.to or "",
        "status": notification.status.value, "severity": notification.severity.value,
        "payload": notification.as_payload(), "state": state, "attempts": 0,
        "created_at": now, "next_attempt_at": now, "last_error": "",
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # ON CONFLICT DO NOTHING: two writers racing on one key both succeed, and one row remains
    statement = insert(OutboxRow).values(**values).on_conflict_do_nothing(
        index_elements=["channel", "key"]).returning(OutboxRow.id)
    row_id = session.execute(statement).scalar()
    if row_id is not None:
        return Enqueued(channel, row_id, True)
    existing = session.scalar(select(OutboxRow.id).where(OutboxRow.channel == channel,
                                                         OutboxRow.key == notification.key))
    return Enqueued(channel, existing, False)


def _unknown(channel: str, settings: ChannelsSettings) -> str:
    close = get_close_matches(channel, list(settings.named), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(sorted(settings.named)) or "none are configured"
    return f"unknown channel {channel!r}{hint} (channels: {known})"


def get(session: Session, *, row_id: int) -> OutboxRow | None:
    return session.get(OutboxRow, row_id)


def get_all(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    channel: str | None = None,
    limit: int = 200,
) -> Sequence[OutboxRow]:
    """Rows oldest first, optionally only in `states` or of one channel."""
    query = select(OutboxRow)
    if states:
        query = query.where(OutboxRow.state.in_(states))
    if channel:
        query = query.where(OutboxRow.channel == channel)
    return session.scalars(query.order_by(OutboxRow.id).limit(limit)).all()


def count_by_state(session: Session) -> dict[str, int]:
    query = select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
    return {state: count for state, count in session.execute(query)}
