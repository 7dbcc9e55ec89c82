"""The dependency findings table: one row per vulnerability of a package of a service, from the
audit that first reported it until the one that no longer does (state open, then fixed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime


class DependencyFindingRow(Base):
    __tablename__ = "dependency_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(100), nullable=False)
    ecosystem: Mapped[str] = mapped_column(String(16), nullable=False)  # PyPI | npm
    package: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[str] = mapped_column(String(100), nullable=False)  # as last seen
    vuln_id: Mapped[str] = mapped_column(String(100), nullable=False)
    aliases: Mapped[list[Any]] = mapped_column(JsonDoc, nullable=False, default=list)
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    cvss_score: Mapped[float | None] = mapped_column(Float)
    cvss_vector: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16), nullable=False)  # critical | high | medium | low
    rated_by: Mapped[str] = mapped_column(String(16), nullable=False)  # cvss | advisory | unrated
    fix_versions: Mapped[list[Any]] = mapped_column(JsonDoc, nullable=False, default=list)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: low, the next release
    fixed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # open | fixed

    __table_args__ = (Index("ix_dependency_findings_open", "state", "service"),)
