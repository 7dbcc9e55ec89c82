"""The reports table: one row per run of a job, with its findings and its body.

A scheduled run is claimed per slot first, and the unique (job, slot) keeps a second row out
all the same; a run asked for by a person has no slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class ReportRow(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the scheduled time; None: asked for
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule | cli | api
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | warning | critical | failed
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    findings: Mapped[list[Any]] = mapped_column(JsonDoc, nullable=False, default=list)
    body: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    markdown: Mapped[str] = mapped_column(Text, nullable=False, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("job", "slot", name="uq_reports_slot"),
                      Index("ix_reports_job", "job"))
