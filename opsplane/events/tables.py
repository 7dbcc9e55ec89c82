"""The `events` table. Rows are only ever inserted; triggers in the migration refuse the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
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
