"""The SLO domain's store functions: each SLO's minutes and hours, their pruning, the ledgers
read back from them, and every SLO's status as the store knows it (for the CLI and the API,
which have no worker's memory to ask)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsplane.events import service as events
from opsplane.slo.budget import Counts, budget_window
from opsplane.slo.ledger import Ledger
from opsplane.slo.models import Slo
from opsplane.slo.status import SloStatus, judge
from opsplane.slo.tables import HOURS_KEPT, MINUTES_KEPT, SloHourRow, SloMinuteRow

BURN_SPAN = 3 * 86400.0  # the longest burn window: minutes are read back this far


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def record(session: Session, *, slo: str, minute: int, good: float, total: float, slices: int = 0,
           bad_slices: int = 0) -> bool:
    """Keep one minute's counts and add them to its hour; False (nothing written) when the
    minute is already kept."""
    at = minute_start(minute)
    if session.get(SloMinuteRow, (slo, at)) is not None:
        return False
    session.add(SloMinuteRow(slo=slo, at=at, good=good, total=total, slices=slices, bad_slices=bad_slices))
    hour_at = minute_start(minute - minute % 60)
    hour = session.get(SloHourRow, (slo, hour_at))
    if hour is None:
        session.add(SloHourRow(slo=slo, at=hour_at, good=good, total=total, slices=slices,
                               bad_slices=bad_slices, minutes=1))
    else:
        hour.good += good
        hour.total += total
        hour.slices += slices
        hour.bad_slices += bad_slices
        hour.minutes += 1
    session.flush()
    return True


def prune(session: Session, *, now: datetime) -> int:
    """Drop minutes older than three days and hours older than 400; how many rows went."""
    minutes: Any = session.execute(delete(SloMinuteRow).where(
        SloMinuteRow.at < now - timedelta(seconds=MINUTES_KEPT)))
    kept: Any = session.execute(delete(SloHourRow).where(
        SloHourRow.at < now - timedelta(seconds=HOURS_KEPT)))
    return int(minutes.rowcount or 0) + int(kept.rowcount or 0)


def load(session: Session, *, name: str, slo: Slo, now: datetime) -> Ledger:
    """A ledger of `slo` holding what the store kept of its window and its burn windows."""
    ledger = Ledger(slo)
    since = min(budget_window(slo, now).start, now - timedelta(seconds=BURN_SPAN))
    rows = session.execute(select(SloHourRow.at, SloHourRow.good, SloHourRow.total, SloHourRow.slices,
                                  SloHourRow.bad_slices)
                           .where(SloHourRow.slo == name, SloHourRow.at >= since - timedelta(hours=1))
                           .order_by(SloHourRow.at))
    for at, good, total, slices, bad in rows:
        ledger.load_hour(int(at.timestamp()) // 3600, good, total, slices, bad)
    rows = session.execute(select(SloMinuteRow.at, SloMinuteRow.good, SloMinuteRow.total,
                                  SloMinuteRow.slices, SloMinuteRow.bad_slices)
                           .where(SloMinuteRow.slo == name,
                                  SloMinuteRow.at >= now - timedelta(seconds=BURN_SPAN))
                           .order_by(SloMinuteRow.at))
    for at, good, total, slices, bad in rows:
        ledger.load_minute(int(at.timestamp()) // 60, good, total, slices, bad)
    return ledger


def hours(session: Session, *, name: str, start: datetime, end: datetime) -> list[SloHourRow]:
    """The hours of `name` starting in [start, end), oldest first."""
    return list(session.scalars(select(SloHourRow).where(
        SloHourRow.slo == name, SloHourRow.at >= start, SloHourRow.at < end).order_by(SloHourRow.at)))


def counts_between(session: Session, *, name: str, start: datetime, end: datetime) -> Counts:
    """The sum of the hours of `name` starting in [start, end)."""
    found = Counts()
    for row in hours(session, name=name, start=start, end=end):
        found += Counts(row.good, row.total, row.slices, row.bad_slices)
    return found


def statuses(session: Session, slos: Mapping[str, Slo], *, now: datetime,
             problems: Mapping[str, str] | None = None) -> list[SloStatus]:
    """Every SLO's status from what the store kept, in the inventory's order."""
    found = []
    for name, slo in slos.items():
        ledger = load(session, name=name, slo=slo, now=now)
        found.append(judge(name, slo, ledger.counts, now, problem=(problems or {}).get(name)))
    return found


def record_budget_change(session: Session, status: SloStatus, *, exhausted: bool, now: datetime) -> None:
    """The event of a budget that was just spent (`exhausted`) or has some left again."""
    details = {"slo": status.name, "objective": status.objective, "sli": status.sli,
               "consumed": status.consumed, "remaining": status.remaining, "deploy_gate": status.deploy_gate,
               "window_start": status.window.start.isoformat()}
    events.record(session, kind="slo.budget_exhausted" if exhausted else "slo.budget_restored",
                  actor="opsplane", target=status.name, service=status.service,
                  outcome="exhausted" if exhausted else "restored", details=details, ts=now)


def budget_was_exhausted(session: Session, *, name: str) -> bool:
    """Whether the last budget event of `name` says it was spent (False with none)."""
    from opsplane.events.tables import Event

    kind = session.scalar(select(Event.kind).where(
        Event.target == name, Event.kind.in_(("slo.budget_exhausted", "slo.budget_restored")))
        .order_by(Event.ts.desc(), Event.id.desc()).limit(1))
    return kind == "slo.budget_exhausted"
