"""What each SLO counted, minute by minute for the last few days and hour by hour for a year.

The SLO worker writes one minute row per SLO each minute (its good and all events, and the time
slices that ended in it) and adds the same counts to the hour's row in the same transaction, so
the hour rows are the sums of their minutes while both are kept. Minute rows answer the burn
rates of the short windows and the edges of the long ones; hour rows answer 30-day and quarter
windows and the monthly report. A minute in which `serve` did not run has no row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, UTCDateTime

MINUTES_KEPT = 3 * 86400.0  # the longest burn-rate window
HOURS_KEPT = 400 * 86400.0  # the longest rolling window, and a year of monthly reports


class SloMinuteRow(Base):
    __tablename__ = "slo_minutes"

    slo: Mapped[str] = mapped_column(String(63), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the minute's start
    good: Mapped[float] = mapped_column(Float, nullable=False)
    total: Mapped[float] = mapped_column(Float, nullable=False)
    slices: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # slices with events ended
    bad_slices: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class SloHourRow(Base):
    __tablename__ = "slo_hours"

    slo: Mapped[str] = mapped_column(String(63), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the hour's start
    good: Mapped[float] = mapped_column(Float, nullable=False)
    total: Mapped[float] = mapped_column(Float, nullable=False)
    slices: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bad_slices: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # minutes recorded in it
