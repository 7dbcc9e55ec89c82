"""The `check_states` table: the last known state of every check, so a restart emits no
spurious state changes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, UTCDateTime


class CheckState(Base):
    __tablename__ = "check_states"

    check_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    component: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
