"""The outbox's plain functions over a session: enqueue, withdraw, read, and the digest's
bookkeeping.

`enqueue` runs in the caller's transaction, so a notification lands in the store together with
the alert or incident change that caused it, or not at all; `withdraw` likewise takes back
what is no longer to be sent together with the change that made it moot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from difflib import get_close_matches
from typing import Any

from sqlalchemy import ColumnElement, Row, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsplane.alerts.models import Severity
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.notify.models import ChannelsSettings, Notification, Status
from opsplane.notify.tables import OPEN_STATES, OutboxRow, Withdrawal

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


@dataclass(frozen=True)
class Withdrawn:
    """What `withdraw` did: the rows withdrawn, and those left to the send in progress."""

    rows: list[int]
    in_flight: list[int]


def withdraw(session: Session, *, group: str, prefix: str, reason: str, now: datetime) -> Withdrawn:
    """Withdraw the rows of `group` whose key starts with `prefix` that are not sent yet, in the
    caller's transaction: each pending or held row that no dispatcher is sending becomes
    `withdrawn` with `reason` (an event `notify.withdrawn` each) and is never sent.

    A row whose send is in progress cannot be taken back: the receiver may take it. It is
    left to that send; if the send does not deliver it, the row is withdrawn then instead of
    being tried again. The withdrawal itself is kept, so a row of the same group and prefix
    queued afterwards (by a writer that did not see it yet) is withdrawn when a dispatcher
    comes to claim it. Withdrawing again is harmless; the first reason stays.
    """
    _remember(session, group=group, prefix=prefix, reason=reason, now=now)
    matching = (OutboxRow.group_key == group, OutboxRow.key.startswith(prefix, autoescape=True),
                OutboxRow.state.in_(OPEN_STATES))
    # one statement decides each row: against a claim committed meanwhile, a row is either
    # taken back here or being sent, never both
    taken = session.execute(
        update(OutboxRow).where(*matching, OutboxRow.sending_since.is_(None))
        .values(state="withdrawn", reason=reason[:500], finished_at=now)
        .returning(OutboxRow.id, OutboxRow.channel, OutboxRow.key, OutboxRow.group_key,
                   OutboxRow.status, OutboxRow.severity, OutboxRow.attempts, OutboxRow.payload)
        .execution_options(synchronize_session=False)).all()
    for row in sorted(taken, key=lambda r: r.id):
        record_withdrawn(session, row, reason=reason, at=now)
    in_flight = session.scalars(select(OutboxRow.id).where(*matching, OutboxRow.sending_since.is_not(None))
                                .order_by(OutboxRow.id)).all()
    return Withdrawn(sorted(row.id for row in taken), list(in_flight))


def record_withdrawn(session: Session, row: OutboxRow | Row[Any], *, reason: str, at: datetime) -> None:
    """The event of one row withdrawn: `notify.withdrawn`, target `<channel>:<key>`."""
    events.record(session, kind="notify.withdrawn", actor=ACTOR, target=f"{row.channel}:{row.key}",
                  outcome="withdrawn", service=row.payload.get("service"), ts=at,
                  details={"channel": row.channel, "key": row.key, "group": row.group_key,
                           "status": row.status, "severity": row.severity, "attempts": row.attempts,
                           "reason": reason})


def _remember(session: Session, *, group: str, prefix: str, reason: str, now: datetime) -> None:
    values = {"group_key": group, "prefix": prefix, "reason": reason[:500], "at": now}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Withdrawal).values(**values).on_conflict_do_nothing(
        index_elements=["group_key", "prefix"]))


def withdrawal_of(session: Session, *, group: str, key: str) -> str | None:
    """The reason a row of `group` keyed `key` is withdrawn, if a withdrawal covers it."""
    for prefix, reason in session.execute(select(Withdrawal.prefix, Withdrawal.reason)
                                          .where(Withdrawal.group_key == group)
                                          .order_by(Withdrawal.at)):
        if key.startswith(prefix):
            return reason
    return None


def covered_by_withdrawal() -> ColumnElement[bool]:
    """True for an outbox row that a withdrawal covers (for a claim's UPDATE)."""
    return exists().where(
        Withdrawal.group_key == OutboxRow.group_key,
        func.substr(OutboxRow.key, 1, func.length(Withdrawal.prefix)) == Withdrawal.prefix)


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
