"""The checklist runs table: one row per run of a checklist, the report's index.

The run itself (each item's outcome and figures) is a runbook run (`runbooks.tables`); this
row says which checklist it was, for which scheduled slot (none when a person asked), and the
counts of its items, so that `opsplane checklist history` reads one table. A slot is run once:
the worker claims it first, and the unique slot here keeps a second row out all the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class ChecklistRunRow(Base):
    __tablename__ = "checklist_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checklist: Mapped[str] = mapped_column(String(100), nullable=False)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("runbook_runs.id"), nullable=False)
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the scheduled time; None: asked for
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule | cli | api
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # running | ok | warned | failed
    ok: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    warned: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    items: Mapped[list[Any]] = mapped_column(JsonDoc, nullable=False, default=list)  # not ok: id, outcome
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("checklist", "slot", name="uq_checklist_runs_slot"),
                      Index("ix_checklist_runs_checklist", "checklist"))
