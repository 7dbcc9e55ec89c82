"""The notification outbox: one row per notification per channel, kept after delivery, and
the holds a throttling receiver put on its channel.

A row is written in the caller's transaction (with the alert or incident change that caused
it), so a notification is never lost to a crash; it is delivered later by the dispatcher,
which records each attempt in the row and in the event log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, BigId, JsonDoc, UTCDateTime

# pending: waiting for its turn or its next attempt, or being sent (`sending_since`); held: a
# P3 waiting for the digest; delivered; failed: refused for good (a 4xx); dead: given up after
# retries; digested: folded into a digest row (digest_id), which carries its delivery;
# withdrawn: no longer to be sent, never sent (`reason` says why: the incident was acknowledged)
STATES = ("pending", "held", "delivered", "failed", "dead", "digested", "withdrawn")
OPEN_STATES = ("pending", "held")


class OutboxRow(Base):
    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(63), nullable=False)
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    group_key: Mapped[str] = mapped_column(String(200), nullable=False)
    # the notification's `to` ("" for the channel's own recipients): with the channel and the
    # group it makes the lane in which rows are delivered in order
    recipient: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default="")
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    severity: Mapped[str] = mapped_column(String(2), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    digest_id: Mapped[int | None] = mapped_column(BigInteger)
    # when the send in progress was claimed; None while no send runs. A row being sent cannot
    # be withdrawn: the person may be reached by it
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")

    __table_args__ = (
        UniqueConstraint("channel", "key", name="uq_notification_outbox_channel_key"),
        Index("ix_notification_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_notification_outbox_lane", "channel", "group_key", "recipient", "state", "id"),
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "key": self.key,
            "group": self.group_key,
            "status": self.status,
            "severity": self.severity,
            "summary": self.payload.get("summary", ""),
            "state": self.state,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_attempt_at": self.last_attempt_at.isoformat() if self.last_attempt_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "last_error": self.last_error,
            "digest_id": self.digest_id,
            "sending_since": self.sending_since.isoformat() if self.sending_since else None,
            "reason": self.reason,
        }


class Withdrawal(Base):
    """The rows of `group_key` whose key starts with `prefix` are not to be sent any more (an
    incident's pages, once someone acknowledged it). Kept so that a row queued or claimed after
    the withdrawal, or one whose send was in flight when it came, is withdrawn in its turn."""

    __tablename__ = "notification_withdrawals"

    group_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ChannelHold(Base):
    """A channel whose receiver answered 429: nothing is sent on it before `until`. Kept after
    it ends until a send succeeds, so that throttling again in a row holds it longer."""

    __tablename__ = "notification_channel_holds"

    channel: Mapped[str] = mapped_column(String(63), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    strikes: Mapped[int] = mapped_column(Integer, nullable=False)  # 429s without a success between
    reason: Mapped[str] = mapped_column(Text, nullable=False)
