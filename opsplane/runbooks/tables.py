"""The runbook runs table and the record of each step's attempts.

A run row is the state machine `opsplane runbook resume` picks up after a crash; it keeps the
runbook as it was when the run began (`definition`), so an edit of the file meanwhile does not
change what a run in progress does. A step row is written `started` before the step acts and
`done` with its outcome after: a started row without an end is a step whose effect is unknown.
Every change is also a `runbook.*` event in the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class RunbookRunRow(Base):
    __tablename__ = "runbook_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runbook: Mapped[str] = mapped_column(String(100), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    incident_id: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)  # auto | manual
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    current_step: Mapped[str | None] = mapped_column(String(63))
    waiting_for: Mapped[str] = mapped_column(Text, nullable=False, default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_runbook_runs_state", "state"),
                      Index("ix_runbook_runs_incident", "incident_id"))


class RunbookStepRow(Base):
    __tablename__ = "runbook_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("runbook_runs.id"), nullable=False)
    step_id: Mapped[str] = mapped_column(String(63), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)  # started | done
    outcome: Mapped[str | None] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text, nullable=False, default="")
    holder: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    confirmed_by: Mapped[str | None] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("run_id", "step_id", "attempt", name="uq_runbook_steps_attempt"),
                      Index("ix_runbook_steps_run", "run_id"))
