"""The game days table: each game day as a persisted state machine, with its report.

A game day's states:

    requested ──▶ running ──▶ injected ──▶ ended ──▶ finished
    (API)            │           │
                     └──▶ failed └──▶ interrupted (its runner died; the fault was undone from `undo`)

`undo` is written in the same transaction as `injected`, before the game day waits for
anything: whoever finds an injected game day whose claim lapsed undoes its fault from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime

ACTIVE = ("requested", "running", "injected", "ended")
FINAL = ("finished", "failed", "interrupted")


class GamedayRow(Base):
    __tablename__ = "gamedays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scenario: Mapped[str] = mapped_column(String(63), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    target: Mapped[str] = mapped_column(String(100), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # cli | api | schedule
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    max_duration: Mapped[float] = mapped_column(nullable=False)
    undo: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    undone: Mapped[str] = mapped_column(Text, nullable=False, default="")
    verdict: Mapped[str | None] = mapped_column(String(8))
    report: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    markdown: Mapped[str] = mapped_column(Text, nullable=False, default="")
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    injected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_gamedays_state", "state"),)
