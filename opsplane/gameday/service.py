"""Game days in the store: each change of state written with its `gameday.*` event in the same
transaction, and the signals a game day's measures read.

Events: `gameday.requested` (through the API), `gameday.injected` (with the scenario), `gameday.ended`
(the fault undone, and how), `gameday.finished` (the verdict and each measure), `gameday.failed`
(the fault could not be injected), `gameday.interrupted` (its runner died; the fault was undone
by whoever found it), `gameday.refused` (the scenario cannot be played here: nothing changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.errors import OpsplaneError
from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.gameday.measures import Signal
from opsplane.gameday.models import Scenario
from opsplane.gameday.tables import ACTIVE, GamedayRow
from opsplane.store.fit import fit

# the kinds of events the measures read
SIGNAL_KINDS = ("check.state_changed", "alert.pending", "alert.firing", "notify.delivered", "incident.opened",
                "incident.alert_joined", "incident.resolved", "runbook.finished")


class GamedayNotFound(OpsplaneError):
    exit_code = 3


def run_claim(gameday_id: int) -> str:
    """The claim whoever drives a game day holds."""
    return f"gameday:{gameday_id}"


def target(row: GamedayRow) -> str:
    return f"gameday:{row.id}"


def create(session: Session, *, name: str, scenario: Scenario, trigger: str, actor: str, now: datetime,
           max_duration: float, state: str = "running") -> GamedayRow:
    row = GamedayRow(**fit(GamedayRow, {
        "scenario": name, "kind": scenario.kind, "target": scenario.target,
        "definition": scenario.model_dump(mode="json"), "trigger": trigger, "requested_by": actor,
        "state": state, "max_duration": max_duration, "undone": "", "markdown": "", "error": "",
        "created_at": now}))
    session.add(row)
    session.flush()
    if state == "requested":
        _event(session, row, "gameday.requested", actor, now, {"max_duration": max_duration})
    return row


def get(session: Session, *, gameday_id: int) -> GamedayRow | None:
    return session.get(GamedayRow, gameday_id)


def get_or_raise(session: Session, *, gameday_id: int) -> GamedayRow:
    row = get(session, gameday_id=gameday_id)
    if row is None:
        raise GamedayNotFound(f"no game day {gameday_id}: `opsplane gameday list` shows them")
    return row


def get_all(session: Session, *, limit: int = 50, states: Sequence[str] | None = None) -> list[GamedayRow]:
    """Game days newest first."""
    query = select(GamedayRow).order_by(GamedayRow.id.desc()).limit(limit)
    if states is not None:
        query = query.where(GamedayRow.state.in_(states))
    return list(session.scalars(query))


def active(session: Session) -> list[GamedayRow]:
    return get_all(session, limit=100, states=ACTIVE)


def injected(session: Session, row: GamedayRow, *, undo: dict[str, Any], actor: str, now: datetime) -> None:
    row.state, row.undo, row.injected_at = "injected", undo, now
    _event(session, row, "gameday.injected", actor, now,
           {"kind": row.kind, "max_duration": row.max_duration, "trigger": row.trigger})


def ended(session: Session, row: GamedayRow, *, undone: str, actor: str, now: datetime,
          outcome: str = "ok") -> None:
    row.state, row.undone, row.ended_at = "ended", undone, now
    if outcome != "ok":
        row.error = undone
    _event(session, row, "gameday.ended", actor, now, {"undone": undone}, outcome=outcome)


def finish(session: Session, row: GamedayRow, *, report: dict[str, Any], markdown: str, verdict: str,
           actor: str, now: datetime) -> None:
    row.state, row.report, row.markdown = "finished", report, markdown
    row.verdict, row.finished_at = verdict, now
    _event(session, row, "gameday.finished", actor, now,
           {"verdict": verdict, "measures": {m["name"]: {"seconds": m["seconds"], "verdict": m["verdict"]}
                                             for m in report.get("measures", [])},
            "incidents": report.get("incidents", [])}, outcome=verdict)


def failed(session: Session, row: GamedayRow, *, error: str, actor: str, now: datetime) -> None:
    row.state, row.error, row.finished_at, row.verdict = "failed", error, now, "fail"
    _event(session, row, "gameday.failed", actor, now, {"error": error}, outcome="failed")


def interrupted(session: Session, row: GamedayRow, *, undone: str, actor: str, now: datetime) -> None:
    row.state, row.undone, row.finished_at, row.verdict = "interrupted", undone, now, "fail"
    row.ended_at = row.ended_at or now
    _event(session, row, "gameday.interrupted", actor, now, {"undone": undone}, outcome="interrupted")


def refused(session: Session, *, name: str, scenario: Scenario, reason: str, actor: str,
            now: datetime) -> None:
    events.record(session, kind="gameday.refused", actor=actor, target=f"gameday:{name}", outcome="refused",
                  service=scenario.target, ts=now,
                  details={"scenario": name, "kind": scenario.kind, "reason": reason})


def signals(session: Session, *, since: datetime, limit: int = 5000) -> list[Signal]:
    """The events since `since` the measures read, oldest first."""
    rows = session.scalars(select(Event).where(Event.ts >= since, Event.kind.in_(SIGNAL_KINDS))
                           .order_by(Event.id).limit(limit))
    return [Signal(r.ts, r.kind, r.service, r.outcome, r.target, r.details or {}) for r in rows]


def as_dict(row: GamedayRow) -> dict[str, Any]:
    """A game day for `--json` and the API (the report when it has one)."""
    return {
        "id": row.id, "scenario": row.scenario, "kind": row.kind, "target": row.target,
        "trigger": row.trigger, "requested_by": row.requested_by, "state": row.state,
        "verdict": row.verdict, "max_duration": row.max_duration, "undone": row.undone, "error": row.error,
        "created_at": row.created_at.isoformat(),
        "injected_at": row.injected_at.isoformat() if row.injected_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "report": row.report,
    }


def _event(session: Session, row: GamedayRow, kind: str, actor: str, now: datetime, details: dict[str, Any],
           *, outcome: str = "ok") -> None:
    events.record(session, kind=kind, actor=actor, target=target(row), outcome=outcome, service=row.target,
                  ts=now, details={"gameday": row.id, "scenario": row.scenario, **details})
