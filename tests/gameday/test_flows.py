"""Playing a game day with a manual clock and a fault that only records what it is asked: the
fault is undone once what was expected came, when the time is up, and when the player is
interrupted; a game day whose player died is undone from its record by the next one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsplane.clock import ManualClock
from opsplane.config.models import Inventory
from opsplane.events import service as events
from opsplane.gameday import service
from opsplane.gameday.faults import Where
from opsplane.gameday.flows import LEASE, GameDays, scenario_named
from opsplane.gameday.models import Scenario
from opsplane.store import Store, claims

INVENTORY = Inventory.model_validate({
    "platform": {"name": "shop"},
    "services": {"payments": {"port": 8203, "run": {"argv": ["true"]}}},
    "gamedays": {"scenarios": {"payments-down": {"kind": "kill", "target": "payments", "max_duration": "2m",
                                                 "targets": {"page": "30s"}}}},
})


class RecordedFault:
    """Injects nothing; remembers every injection and undo."""

    def __init__(self, log: list[str], *, broken: bool = False) -> None:
        self.log, self.broken = log, broken

    def check(self) -> None:
        pass

    def inject(self) -> dict[str, Any]:
        if self.broken:
            raise OSError("the supervisor did not answer")
        self.log.append("inject")
        return {"service": "payments"}

    def undo(self, record: Mapping[str, Any]) -> str:
        self.log.append(f"undo {record['service']}")
        return f"{record['service']} started again"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    yield opened
    opened.close()


Outage = dict[float, tuple[str, str, dict[str, Any]]]


def _days(store: Store, clock: ManualClock, log: list[str], *, outage: Outage,
          broken: bool = False) -> GameDays:
    """A player whose waits move the clock and write, at their time, the events of `outage`
    (seconds after the start: kind, outcome, details), as `serve` would."""
    start = clock.now()

    def wait(seconds: float) -> bool:
        before = (clock.now() - start).total_seconds()
        clock.advance(seconds)
        with store.session() as session:
            for at, (kind, outcome, details) in outage.items():
                if before < at <= before + seconds:
                    events.record(session, kind=kind, actor="opsplane", target="payments/health",
                                  outcome=outcome, service="payments", details=details,
                                  ts=start + timedelta(seconds=at))
        return False

    def open_fault(scenario: Scenario, where: Where) -> RecordedFault:
        return RecordedFault(log, broken=broken)

    return GameDays(store, INVENTORY, base_dir=Path("."), environ={}, clock=clock, actor="cli:ana", wait=wait,
                    open=open_fault)


OUTAGE = {
    4.0: ("check.state_changed", "CRITICAL", {}),
    7.0: ("incident.opened", "ok", {"incident": 3, "severity": "P1"}),
    20.0: ("notify.delivered", "delivered", {"key": "escalation:3:paging:r0:s0:ana:sms", "channel": "sms"}),
}


def test_the_fault_is_undone_as_soon_as_detection_and_paging_came(store: Store) -> None:
    clock, log = ManualClock(), []
    days = _days(store, clock, log, outage=OUTAGE)
    played = days.play("payments-down", scenario_named(INVENTORY, "payments-down"), trigger="cli")
    days.close()
    assert log == ["inject", "undo payments"]
    assert (played.state, played.verdict) == ("finished", "pass")
    assert played.report is not None
    assert {m["name"]: m["seconds"] for m in played.report["measures"]} == {
        "detect": 4.0, "page": 20.0, "recover": None, "resolve": None}
    assert played.report["fault_seconds"] == 20.0  # not the two minutes it was allowed
    with store.session() as session:
        row = service.get_or_raise(session, gameday_id=played.id)
        assert (row.state, row.verdict, row.undone) == ("finished", "pass", "payments started again")
        assert row.markdown.startswith(f"# Game day {played.id}: payments-down")
        assert session.get(claims.WorkClaim, service.run_claim(played.id)).done_at is not None


def test_a_page_that_never_comes_fails_at_the_maximum_duration_and_the_fault_is_undone(store: Store) -> None:
    clock, log = ManualClock(), []
    days = _days(store, clock, log, outage={4.0: OUTAGE[4.0]})
    scenario = scenario_named(INVENTORY, "payments-down", max_duration=60.0)
    scenario = scenario.model_copy(update={"settle": 10.0})
    played = days.play("payments-down", scenario, trigger="cli")
    days.close()
    assert log == ["inject", "undo payments"]
    assert played.verdict == "fail" and played.report is not None
    page = next(m for m in played.report["measures"] if m["name"] == "page")
    assert (page["seconds"], page["verdict"], page["target"]) == (None, "fail", 30.0)
    assert played.report["fault_seconds"] == 60.0


def test_an_interrupted_player_still_undoes_the_fault(store: Store) -> None:
    clock, log = ManualClock(), []
    days = _days(store, clock, log, outage={})

    def interrupted(seconds: float) -> bool:
        raise KeyboardInterrupt

    days.wait = interrupted
    with pytest.raises(KeyboardInterrupt):
        days.play("payments-down", scenario_named(INVENTORY, "payments-down"), trigger="cli")
    days.close()
    assert log == ["inject", "undo payments"]


def test_a_fault_that_could_not_be_injected_fails_the_game_day_with_nothing_to_undo(store: Store) -> None:
    clock, log = ManualClock(), []
    days = _days(store, clock, log, outage={}, broken=True)
    played = days.play("payments-down", scenario_named(INVENTORY, "payments-down"), trigger="cli")
    days.close()
    assert (played.state, played.verdict, log) == ("failed", "fail", [])
    with store.session() as session:
        assert "the supervisor did not answer" in service.get_or_raise(session, gameday_id=played.id).error


def test_a_game_day_whose_player_died_is_undone_from_its_record_by_the_next(store: Store) -> None:
    clock, log = ManualClock(), []
    scenario = scenario_named(INVENTORY, "payments-down")
    with store.session() as session:  # a player took it, injected the fault and died
        row = service.create(session, name="payments-down", scenario=scenario, trigger="cli", actor="cli:ben",
                             now=clock.now(), max_duration=120.0)
        claims.take(session, service.run_claim(row.id), holder="gone:1", now=clock.now(), lease=LEASE)
        service.injected(session, row, undo={"service": "payments"}, actor="cli:ben", now=clock.now())
        gameday_id = row.id
    days = _days(store, clock, log, outage={})
    assert days.recover() == []  # its claim has not lapsed: the player may be alive
    clock.advance(LEASE + 1)
    assert days.recover() == [f"game day {gameday_id} was cut off: payments started again"]
    assert days.recover() == []
    days.close()
    assert log == ["undo payments"]
    with store.session() as session:
        assert service.get_or_raise(session, gameday_id=gameday_id).state == "interrupted"
        [event] = events.get_all(session, kind="gameday.interrupted")
        assert event.details["undone"] == "payments started again"
