"""When the alert rules were last evaluated, by which process and every how often.

Each alerting cycle of `serve` keeps one row here (`alert_evaluations`); a `serve` whose rules
have nothing to read yet keeps it too. `opsplane alerts` and the dashboard read it to tell
"no alerts" from "nothing is evaluating the rules". This module is all `serve` loads for
that while alerting itself is not loaded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime

RULES = "rules"  # the one evaluation kept: of the inventory's rules, by whichever serve runs them
STALE_CYCLES = 3
"""Intervals without a cycle after which the rules count as not evaluated (a slow or skipped
cycle is not yet an outage); at least STALE_CYCLES seconds for intervals under a second."""


class EvaluationRow(Base):
    """The last alerting cycle. One row, rewritten by each cycle (a second evaluator of the
    same store would take it over)."""

    __tablename__ = "alert_evaluations"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    interval: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # rules evaluated (0: nothing for rules to read yet) and those whose query failed
    rules: Mapped[int] = mapped_column(Integer, nullable=False)
    failing: Mapped[list[str]] = mapped_column(JsonDoc, nullable=False)


@dataclass(frozen=True)
class Evaluation:
    """An alerting cycle as the store remembers it: when, by which process, every how often."""

    evaluated_at: datetime
    host: str
    pid: int
    interval: float
    started_at: datetime
    rules: int  # rules evaluated; 0 while they have nothing to read (nothing scraped or failing)
    failing: tuple[str, ...] = ()  # rules whose query failed in that cycle

    def is_stale(self, now: datetime) -> bool:
        """True when no cycle ran for STALE_CYCLES intervals: nothing is evaluating the rules."""
        return (now - self.evaluated_at).total_seconds() > STALE_CYCLES * max(self.interval, 1.0)


def by_this_process(*, now: datetime, interval: float, started_at: datetime, rules: int,
                    failing: Iterable[str] = ()) -> Evaluation:
    """A cycle of this process (its host name and pid) at `now`."""
    return Evaluation(evaluated_at=now, host=socket.gethostname(), pid=os.getpid(), interval=interval,
                      started_at=started_at, rules=rules, failing=tuple(sorted(failing)))


def record(session: Session, evaluation: Evaluation) -> None:
    """Keep `evaluation` as the last one: one small UPDATE per cycle (an INSERT the first time)."""
    values: dict[str, Any] = {
        "evaluated_at": evaluation.evaluated_at, "host": evaluation.host, "pid": evaluation.pid,
        "interval": evaluation.interval, "started_at": evaluation.started_at, "rules": evaluation.rules,
        "failing": list(evaluation.failing),
    }
    updated = session.execute(update(EvaluationRow).where(EvaluationRow.name == RULES).values(**values))
    if not getattr(updated, "rowcount", 0):
        session.add(EvaluationRow(name=RULES, **values))


def get(session: Session) -> Evaluation | None:
    """The last alerting cycle, None when no evaluator ever ran on this store."""
    row = session.get(EvaluationRow, RULES)
    if row is None:
        return None
    return Evaluation(evaluated_at=row.evaluated_at, host=row.host, pid=row.pid, interval=row.interval,
                      started_at=row.started_at, rules=row.rules, failing=tuple(row.failing))
