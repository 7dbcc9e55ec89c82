"""Capacity recordings in the store: keep one, prune old ones, read a resource's history back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsplane.capacity.forecast import Point
from opsplane.capacity.tables import CapacityHourRow, CapacitySampleRow

FINE_SPAN = 3 * 86400.0  # a history shorter than this is read recording by recording


def record(session: Session, values: Mapping[str, float], *, at: datetime) -> int:
    """Keep each resource's value at `at` and add it to its hour; how many were new."""
    hour_at = at.replace(minute=0, second=0, microsecond=0)
    kept = 0
    for resource, value in values.items():
        if session.get(CapacitySampleRow, (resource, at)) is not None:
            continue
        session.add(CapacitySampleRow(resource=resource, at=at, value=value))
        hour = session.get(CapacityHourRow, (resource, hour_at))
        if hour is None:
            session.add(CapacityHourRow(resource=resource, at=hour_at, count=1, total=value, peak=value))
        else:
            hour.count += 1
            hour.total += value
            hour.peak = max(hour.peak, value)
        kept += 1
    session.flush()
    return kept


def prune(session: Session, *, now: datetime, minutes_kept: float, hours_kept: float) -> int:
    """Drop recordings older than `minutes_kept` and hours older than `hours_kept` seconds."""
    fine: Any = session.execute(delete(CapacitySampleRow).where(
        CapacitySampleRow.at < now - timedelta(seconds=minutes_kept)))
    coarse: Any = session.execute(delete(CapacityHourRow).where(
        CapacityHourRow.at < now - timedelta(seconds=hours_kept)))
    return int(fine.rowcount or 0) + int(coarse.rowcount or 0)


def resources(session: Session) -> list[str]:
    """Every resource with an hour kept, in name order."""
    names = select(CapacityHourRow.resource).distinct().order_by(CapacityHourRow.resource)
    return list(session.scalars(names))


def history(session: Session, resource: str, *, now: datetime, span: float | None = None) -> list[Point]:
    """A resource's values as (time, value) up to `now`: every recording when what is kept spans
    less than FINE_SPAN, else each hour's mean at the hour's middle. `span` (seconds) keeps only
    the newest part."""
    since = now - timedelta(seconds=span) if span is not None else datetime(1970, 1, 1, tzinfo=UTC)
    first = session.scalar(select(CapacityHourRow.at).where(CapacityHourRow.resource == resource)
                           .order_by(CapacityHourRow.at).limit(1))
    if first is None:
        return []
    if (now - max(first, since)).total_seconds() < FINE_SPAN:
        rows = session.execute(select(CapacitySampleRow.at, CapacitySampleRow.value)
                               .where(CapacitySampleRow.resource == resource, CapacitySampleRow.at >= since,
                                      CapacitySampleRow.at <= now).order_by(CapacitySampleRow.at))
        return [(at.timestamp(), value) for at, value in rows]
    hours = session.execute(select(CapacityHourRow.at, CapacityHourRow.total, CapacityHourRow.count)
                            .where(CapacityHourRow.resource == resource, CapacityHourRow.at >= since,
                                   CapacityHourRow.at <= now).order_by(CapacityHourRow.at))
    return [(at.timestamp() + 1800.0, total / count) for at, total, count in hours if count]
