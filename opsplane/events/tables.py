"""The `events` table and the head of its hash chain (`event_chain`, one row).

Rows are only ever inserted; triggers in the migrations refuse updates, and deletes of any
event after the chain's checkpoint (retention moves the checkpoint, then deletes what it
archived). Each event holds its predecessor's hash and its own (`chain.py`); the ids, the
links and the head are set at flush time by `append.py`, whoever adds the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, BigId, JsonDoc, UTCDateTime


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(100), nullable=False)
    target: Mapped[str] = mapped_column(String(300), nullable=False)
    service: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(50), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_events_ts", "ts"),
        Index("ix_events_kind_ts", "kind", "ts"),
        Index("ix_events_service_ts", "service", "ts"),
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "target": self.target,
            "service": self.service,
            "outcome": self.outcome,
            "details": self.details,
        }


class EventChain(Base):
    """The chain's one row: its head (the last event's id and hash), which every append
    locks and moves in the same transaction, and its checkpoint (the last archived event's id
    and hash, or 0 and GENESIS), where a walk of the table starts."""

    __tablename__ = "event_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    base_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    base_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    base_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
