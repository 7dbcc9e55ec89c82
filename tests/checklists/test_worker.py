"""`serve`'s checklist worker on a clock the test sets: the morning list runs once at 08:00 on
Berlin's wall clock, in winter and summer time and on the day the clocks change; not again in
the same slot after a restart or on a second replica; not at all when `serve` comes back long
after its time. Each run is kept as a report that the history shows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsplane.checklists import service
from opsplane.checklists.worker import ChecklistWorker, build, due_slots
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.runbooks import service as runs
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import WorkerContext

INVENTORY = loads("""
platform: {name: shop}
checklists:
  timezone: Europe/Berlin
  schedules:
    morning: {at: "08:00"}
    afternoon: {enabled: false}
    end-of-day: {enabled: false}
    weekly: {enabled: false}
    monthly: {enabled: false}
""")


def at(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield opened
    opened.close()


class Serve:
    """A `serve` replica's checklist worker over the shared store and clock."""

    def __init__(self, store: Store, clock: ManualClock, holder: str = "host-a:1") -> None:
        self.ctx = WorkerContext(inventory=INVENTORY, store=store, clock=clock, env="production",
                                 metrics=ControlPlaneMetrics(process=False), environ={})
        worker = build(self.ctx)
        assert isinstance(worker, ChecklistWorker)
        self.worker = worker
        self.worker.holder = holder

    def round(self) -> datetime | None:
        return asyncio.run(self.worker.round())

    def close(self) -> None:
        self.ctx.store_threads.close()


def slots(store: Store) -> list[tuple[str, datetime | None, str]]:
    with store.session() as session:
        return [(r.checklist, r.slot, r.trigger) for r in reversed(service.history(session))]


def test_the_morning_list_runs_once_at_eight_on_the_local_wall_clock(store: Store) -> None:
    clock = ManualClock(at(2026, 3, 28, 6, 59))  # Saturday 07:59 CET (UTC+1)
    serve = Serve(store, clock)
    assert serve.round() == at(2026, 3, 28, 7, 0)  # nothing yet; the next is 08:00 CET
    assert slots(store) == []
    clock.advance(70)  # 08:00:10 CET
    serve.round()
    serve.round()
    assert slots(store) == [("morning", at(2026, 3, 28, 7, 0), "schedule")]
    # the clocks go forward that night: Sunday's 08:00 is CEST (UTC+2)
    assert serve.round() == at(2026, 3, 29, 6, 0)
    clock.advance((at(2026, 3, 29, 6, 0, 5) - clock.now()).total_seconds())
    serve.round()
    # and back in October: 08:00 CET again, the day the hour repeats
    clock.advance((at(2026, 10, 25, 7, 0, 5) - clock.now()).total_seconds())
    serve.round()
    serve.round()
    assert [slot for _, slot, _ in slots(store)] == [at(2026, 3, 28, 7, 0), at(2026, 3, 29, 6, 0),
                                                     at(2026, 10, 25, 7, 0)]
    serve.close()


def test_a_restart_or_a_second_replica_does_not_run_the_slot_again(store: Store) -> None:
    clock = ManualClock(at(2026, 12, 7, 7, 0, 2))  # Monday 08:00:02 CET
    first = Serve(store, clock)
    first.round()
    first.close()
    clock.advance(60)
    restarted, other = Serve(store, clock), Serve(store, clock, holder="host-b:7")
    restarted.round()
    other.round()
    assert slots(store) == [("morning", at(2026, 12, 7, 7, 0), "schedule")]
    restarted.close()
    other.close()


def test_the_report_is_kept_with_its_counts_and_the_history_shows_it(store: Store) -> None:
    clock = ManualClock(at(2026, 12, 7, 7, 0, 2))
    serve = Serve(store, clock)
    serve.round()
    serve.close()
    with store.session() as session:
        [row] = service.history(session, checklist="morning")
        assert row.state in ("ok", "warned", "failed") and row.ended_at is not None
        items = service.items(runs.steps(session, row.run_id))
    kinds = {item["step"]: item["outcome"] for item in items}
    # nothing is checked, scraped, open or firing on this platform: those items are ok
    for step in ("services", "errors", "latency", "backups", "wal", "incidents", "alerts"):
        assert kinds[step] == "ok", (step, items)
    assert row.ok + row.warned + row.failed == 9  # every item but the note is counted


def test_a_list_missed_by_more_than_late_waits_for_its_next_time() -> None:
    planned = {"morning": ("0 8 * * *", "Europe/Berlin")}
    assert due_slots(planned, now=at(2026, 12, 7, 6, 59), late=3600) == []  # 07:59 CET
    assert due_slots(planned, now=at(2026, 12, 7, 8, 1), late=3600) == []  # 09:01 CET: an hour late
    [due] = due_slots(planned, now=at(2026, 12, 7, 7, 30), late=3600)
    assert due.key == "checklist-slot:morning:2026-12-07T07:00:00+00:00"
    without = loads("platform: {name: shop}\n")
    assert build(WorkerContext(inventory=without, store=None, clock=ManualClock(),  # type: ignore[arg-type]
                               env="production", metrics=ControlPlaneMetrics(process=False))) is None
