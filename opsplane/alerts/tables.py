"""The alerting tables: each alert's state, the notification log and silences (the last
evaluation's row is in evaluations.py).

Alert states and the notification log are what let the control plane restart without
losing a firing alert or paging it a second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, BigId, JsonDoc, UTCDateTime


class AlertRow(Base):
    __tablename__ = "alert_states"

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(500), nullable=False)
    labels: Mapped[dict[str, str]] = mapped_column(JsonDoc, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    # NULL stands for NaN, which SQLite cannot store
    value: Mapped[float | None] = mapped_column(Float)
    annotations: Mapped[dict[str, str]] = mapped_column(JsonDoc, nullable=False)
    active_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keep_firing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "rule" for opsplane's own rules, "prometheus" for alerts received by the intake
    source: Mapped[str] = mapped_column(String(63), nullable=False, server_default="rule")
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    generator_url: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # the rule's unit (opsplane.units), so that readers write the value as it is meant
    unit: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_alert_states_rule", "rule"),)


class NotificationRow(Base):
    """The last notification of one group to one receiver (Alertmanager's notification log)."""

    __tablename__ = "alert_notifications"

    receiver: Mapped[str] = mapped_column(String(63), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    group_key: Mapped[str] = mapped_column(Text, nullable=False)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    firing: Mapped[list[str]] = mapped_column(JsonDoc, nullable=False)
    resolved: Mapped[list[str]] = mapped_column(JsonDoc, nullable=False)


class SilenceRow(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    matchers: Mapped[list[str]] = mapped_column(JsonDoc, nullable=False)
    author: Mapped[str] = mapped_column(String(200), nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": list(self.matchers),
            "author": self.author,
            "comment": self.comment,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created_at": self.created_at.isoformat(),
        }
