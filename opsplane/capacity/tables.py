"""Each resource's recorded use: every recording (kept `minutes_kept`, a week by default) and
each hour's count, sum and peak of them (kept `hours_kept`, 400 days), written together.

A resource is named by kind and subject: `cpu`, `memory`, `disk:/var`, `dir:uploads`,
`db_pool:catalog`, `requests:gateway`. Values are fractions of capacity (0 to 1), but the
request rate, which is requests per second.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, UTCDateTime


class CapacitySampleRow(Base):
    __tablename__ = "capacity_samples"

    resource: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)


class CapacityHourRow(Base):
    __tablename__ = "capacity_hours"

    resource: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the hour's start
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    total: Mapped[float] = mapped_column(Float, nullable=False)  # the sum of its recordings
    peak: Mapped[float] = mapped_column(Float, nullable=False)
