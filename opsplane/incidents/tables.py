"""The incident tables: incidents, their status updates, the alerts that opened or joined
them, and post-mortem action items. Every change to them is also an event in the log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    # what the public status page calls it; None: words made from its severity (web.status)
    public_title: Mapped[str | None] = mapped_column(String(300))
    service: Mapped[str] = mapped_column(String(100), nullable=False)
    severity: Mapped[str] = mapped_column(String(2), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    group_key: Mapped[str] = mapped_column(String(300), nullable=False)
    commander: Mapped[str | None] = mapped_column(String(200))
    participants: Mapped[list[str]] = mapped_column(JsonDoc, nullable=False, default=list)
    opened_by: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    root_cause: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        Index("ix_incidents_status_group", "status", "group_key"),
        Index("ix_incidents_started_at", "started_at"),
    )


class IncidentUpdateRow(Base):
    __tablename__ = "incident_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    actions: Mapped[str] = mapped_column(Text, nullable=False, default="")
    next_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    author: Mapped[str] = mapped_column(String(200), nullable=False)

    __table_args__ = (
        Index("ix_incident_updates_incident_id", "incident_id", "at"),
        Index("ix_incident_updates_public", "public", "at"),
    )


class IncidentAlertRow(Base):
    """One firing of one alert (fingerprint and the time it became active) and its incident:
    the same firing never opens a second incident, even after the first is resolved."""

    __tablename__ = "incident_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    active_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    alertname: Mapped[str] = mapped_column(String(100), nullable=False)
    severity: Mapped[str] = mapped_column(String(2), nullable=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("fingerprint", "active_at", name="uq_incident_alerts_fingerprint"),
        Index("ix_incident_alerts_incident_id", "incident_id"),
    )

    def as_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "alertname": self.alertname,
                "severity": self.severity, "active_at": self.active_at.isoformat(),
                "joined_at": self.joined_at.isoformat()}


class ActionItemRow(Base):
    __tablename__ = "incident_action_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    due: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_incident_action_items_incident_id", "incident_id"),)
