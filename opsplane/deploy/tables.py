"""The deploys table: one row per deploy, its plan, the step it is at and what it decided.

Every change of a deploy is also a `deploy.*` event in the log; this row is the state machine
that `serve` resumes after a crash. `active_service` holds the service's name while the deploy
is not finished, and is unique: one deploy at a time per service, enforced by the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class DeployRow(Base):
    __tablename__ = "deploys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(100), nullable=False)
    active_service: Mapped[str | None] = mapped_column(String(100), unique=True)
    environment: Mapped[str] = mapped_column(String(100), nullable=False)
    strategy: Mapped[str] = mapped_column(String(16), nullable=False)
    from_version: Mapped[str] = mapped_column(String(64), nullable=False)
    to_version: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, nullable=False, default=list)
    step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    step_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extensions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    percent: Mapped[float] = mapped_column(nullable=False, default=0.0)  # the new release's share now
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, nullable=False, default=list)
    verdicts: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, nullable=False, default=list)
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    incident_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deploys_service_created", "service", "created_at"),
                      Index("ix_deploys_state", "state"))
