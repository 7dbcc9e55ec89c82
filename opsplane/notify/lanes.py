"""What blocks what in the outbox: which rows may be sent now, and when the next one may.

Every row is in a **lane**: its channel, its group and its recipient (the notification's `to`;
empty for the channel's own recipients). Rows of one lane go out in the order they were
queued: a row waits while an earlier row of its lane is pending, so an acknowledgement never
overtakes the call it acknowledges and a resolve never overtakes its trigger. Nothing else
holds a row back: not a page to another person of the same incident, not another channel's
backlog. Beyond its lane a row waits only for its own channel: a receiver's 429 (a hold, kept
here in the store so that every dispatcher and a restarted one honour it) and the channel's
rate (counted by the dispatcher).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from opsplane.notify.tables import ChannelHold, OutboxRow


def _behind_in_lane() -> ColumnElement[bool]:
    """True for a row with an earlier pending row in its lane."""
    earlier = aliased(OutboxRow)
    return exists().where(
        earlier.channel == OutboxRow.channel,
        earlier.group_key == OutboxRow.group_key,
        earlier.recipient == OutboxRow.recipient,
        earlier.state == "pending",
        earlier.id < OutboxRow.id,
    )


def due(session: Session, *, now: datetime, per_channel: int, skip: Collection[str] = (),
        only: Collection[int] | None = None) -> list[tuple[int, str]]:
    """(row id, channel) of the rows that may be sent at `now`: the first pending row of each
    lane, if due, on a channel not in `skip`.

    At most `per_channel` a channel, the most severe first, then the longest waiting; and
    interleaved, every channel's first row before any channel's second, so that a backlog on
    one channel never pushes another channel's rows out of a pass.
    """
    rank = func.row_number().over(
        partition_by=OutboxRow.channel,
        order_by=(OutboxRow.severity, OutboxRow.next_attempt_at, OutboxRow.id)).label("rank")
    heads = (select(OutboxRow.id, OutboxRow.channel, OutboxRow.severity, OutboxRow.next_attempt_at, rank)
             .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now, ~_behind_in_lane()))
    if skip:
        heads = heads.where(OutboxRow.channel.not_in(list(skip)))
    if only is not None:
        heads = heads.where(OutboxRow.id.in_(list(only)))
    ranked = heads.subquery()
    query = (select(ranked.c.id, ranked.c.channel).where(ranked.c.rank <= per_channel)
             .order_by(ranked.c.rank, ranked.c.severity, ranked.c.next_attempt_at, ranked.c.id))
    return [(row_id, channel) for row_id, channel in session.execute(query)]


def next_due(session: Session) -> dict[str, datetime]:
    """Per channel with pending rows, when its earliest lane head falls due (its next retry,
    or the end of a claim); rows behind another in their lane do not count, since they wait
    for that one."""
    query = (select(OutboxRow.channel, func.min(OutboxRow.next_attempt_at))
             .where(OutboxRow.state == "pending", ~_behind_in_lane())
             .group_by(OutboxRow.channel))
    return {channel: at for channel, at in session.execute(query)}


# --- holds: a channel whose receiver answered 429 ---------------------------------------------


@dataclass(frozen=True)
class Hold:
    until: datetime
    strikes: int  # 429s since the channel's last successful send


def holds(session: Session) -> dict[str, Hold]:
    """Every channel's hold, including those that have ended (their strikes still count)."""
    return {row.channel: Hold(row.until, row.strikes) for row in session.scalars(select(ChannelHold))}


def hold(session: Session, *, channel: str, until: datetime, strikes: int, reason: str) -> Hold:
    """Hold `channel` until `until`, in the caller's transaction; two dispatchers throttled at
    once leave one hold, the later one's."""
    values = {"channel": channel, "until": until, "strikes": strikes, "reason": reason[:500]}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ChannelHold).values(**values).on_conflict_do_update(
        index_elements=["channel"], set_={k: v for k, v in values.items() if k != "channel"})
    session.execute(statement)
    return Hold(until, strikes)


def release(session: Session, *, channel: str, answered_at: datetime) -> None:
    """Forget a channel's hold and its strikes: a send on it succeeded at `answered_at`. A
    hold that lasts beyond that is newer than the success (another dispatcher's 429 since)
    and stays."""
    session.execute(delete(ChannelHold).where(ChannelHold.channel == channel,
                                              ChannelHold.until <= answered_at))
