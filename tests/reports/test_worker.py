"""The scheduled jobs' seam on a clock the test sets: a job runs once in its slot on its wall
clock, even on a second replica; its report is kept with a `report.saved` event; its findings
become the series the rules ReportCritical and ReportFailed read, and a clean next report
takes them away; a job that breaks is a failed report with the reason, not a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsplane.alerts.pack import REPORT_FAILED, REPORT_FINDINGS
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.errors import ConfigError
from opsplane.events.tables import Event
from opsplane.reports import jobs, service
from opsplane.reports.jobs import Job, JobEnv
from opsplane.reports.models import Finding, Report
from opsplane.reports.worker import ReportsWorker, build
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import WorkerContext

INVENTORY_TEXT = """
platform: {name: shop}
jobs:
  timezone: Europe/Berlin
  schedules:
    count-events: {cron: "0 2 * * 0"}
"""
SAID: dict[str, object] = {"broken": False, "critical": 2}


def count_events(env: JobEnv) -> Report | None:
    """A job over the store: how many events it holds, and findings as the test asks."""
    if SAID["broken"]:
        raise RuntimeError("the server went away")
    with env.store.session() as session:
        count = session.scalar(select(func.count()).select_from(Event)) or 0
    many = int(str(SAID["critical"]))
    findings = tuple(Finding("critical", f"table {i}", "never vacuumed") for i in range(many))
    return Report(job="count-events", subject="store", summary=f"{count} events", findings=findings,
                  body={"events": count}, markdown=f"# Events\n\n{count}\n")


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job("count-events", f"{__name__}:count_events", "0 3 * * 1", "events")
    monkeypatch.setattr(jobs, "JOBS", (job,))
    SAID.update(broken=False, critical=2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield opened
    opened.close()


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Serve:
    def __init__(self, store: Store, clock: ManualClock, holder: str) -> None:
        self.ctx = WorkerContext(inventory=loads(INVENTORY_TEXT), store=store, clock=clock, env="production",
                                 metrics=ControlPlaneMetrics(process=False), environ={})
        worker = build(self.ctx)
        assert isinstance(worker, ReportsWorker)
        self.worker = worker
        worker.holder = holder
        asyncio.run(self.ctx.in_store(worker._load))
        worker._publish()

    def round(self) -> object:
        return asyncio.run(self.worker.round())

    def close(self) -> None:
        self.ctx.store_threads.close()


def kept(store: Store) -> list[tuple[str, datetime | None, str, str]]:
    with store.session() as session:
        return [(r.job, r.slot, r.trigger, r.outcome) for r in reversed(service.history(session))]


def series(worker: ReportsWorker) -> dict[str, float]:
    named = [(dict(labels), v) for labels, v in worker.samples]
    return {f"{labels['__name__']}:{labels.get('severity', '')}": v for labels, v in named}


def test_a_job_runs_once_in_its_slot_and_its_findings_become_series(store: Store) -> None:
    clock = ManualClock(at(2026, 12, 6, 0, 59))  # Sunday 01:59 in Berlin (UTC+1)
    one, two = Serve(store, clock, "host-a:1"), Serve(store, clock, "host-b:2")
    try:
        assert one.round() == at(2026, 12, 6, 1, 0)  # 02:00 Berlin
        assert kept(store) == []
        clock.advance(120)
        one.round()
        two.round()  # the second replica finds the slot taken
        one.round()
        assert kept(store) == [("count-events", at(2026, 12, 6, 1, 0), "schedule", "critical")]
        assert series(one.worker) == {f"{REPORT_FINDINGS}:critical": 2.0}
        with store.session() as session:
            row = service.latest(session, "count-events")
            assert row is not None and row.body["events"] >= 0 and row.markdown.startswith("# Events")
            saved = session.scalars(select(Event).where(Event.kind == "report.saved")).all()
        assert [(e.outcome, e.details["critical"]) for e in saved] == [("critical", 2)]
        # a restarted serve publishes what the store holds before any job runs again
        three = Serve(store, clock, "host-c:3")
        assert series(three.worker) == {f"{REPORT_FINDINGS}:critical": 2.0}
        three.close()
        # next Sunday the job breaks: a failed report with the reason, and ReportFailed's series
        SAID.update(broken=True)
        clock.advance(7 * 86400)
        one.round()
        with store.session() as session:
            last = service.latest(session, "count-events")
        assert last is not None and last.outcome == "failed" and "the server went away" in last.summary
        assert series(one.worker) == {f"{REPORT_FAILED}:": 1.0}
        # and the Sunday after it is clean again: no series, so the alerts resolve
        SAID.update(broken=False, critical=0)
        clock.advance(7 * 86400)
        one.round()
        assert series(one.worker) == {}
    finally:
        one.close()
        two.close()


def test_a_schedule_naming_no_job_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\njobs:\n  schedules:\n    db-reprot: {cron: '0 2 * * 0'}\n")
    assert "jobs.schedules.db-reprot" in str(caught.value) and "count-events" in str(caught.value)
