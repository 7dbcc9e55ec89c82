"""Recording and forecasting real disk use: a scratch directory filled at a known rate, one file
per recording on a ManualClock, measured by the recorder as the directory's bytes over its
configured size; its time to the disk trigger is forecast within 10 % of the truth. The store is
SQLite and PostgreSQL (the suite's `store` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from opsplane.capacity import service
from opsplane.capacity.report import forecasts, report
from opsplane.capacity.tables import CapacitySampleRow
from opsplane.capacity.worker import Recorder
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.store import Store

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SIZE = 10_000_000  # the directory's quota
FILE = 50_000  # written before each recording
EVERY = 600.0  # a recording every ten minutes


def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    inventory = loads(f"""
platform: {{name: shop}}
capacity:
  interval: 10m
  min_history: 6h
  disks: ["{tmp_path}"]
  directories: {{spool: {{path: spool, size: {SIZE}}}}}
""")
    assert inventory.capacity is not None
    return inventory.capacity


def test_a_directory_filled_at_a_known_rate_is_forecast_to_reach_its_trigger_on_time(
        store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "base.bin").write_bytes(b"\0" * 2_000_000)
    clock = ManualClock(START)
    recorder = Recorder(settings(tmp_path), store, clock, base_dir=tmp_path)
    for n in range(48):  # eight hours
        (spool / f"part-{n}.bin").write_bytes(b"\0" * FILE)
        readings = recorder.record_once()
        assert readings.problems == {}
        if n == 12:  # two hours in: too little history to call it a trend
            with store.session() as session:
                early = {f.resource: f for f in forecasts(session, recorder.settings, now=clock.now())}
            assert early["dir:spool"].status == "learning" and early["dir:spool"].crosses_at is None
            assert "2 h of history" in early["dir:spool"].sentence()
        clock.advance(EVERY)
    now = clock.now() - timedelta(seconds=EVERY)  # the last recording
    used = 2_000_000 + 48 * FILE
    assert readings.values["dir:spool"] == pytest.approx(used / SIZE)
    assert 0 < readings.values[f"disk:{tmp_path}"] < 1  # the scratch filesystem, by statvfs
    truth = (0.85 * SIZE - used) / (FILE / EVERY)  # seconds until 85 % at the rate it was filled
    with store.session() as session:
        assert len(service.history(session, "dir:spool", now=now)) == 48
        found = {f.resource: f for f in forecasts(session, recorder.settings, now=now)}
    spool_forecast = found["dir:spool"]
    assert spool_forecast.choice is not None and spool_forecast.choice.fit.kind == "linear"
    seconds = spool_forecast.time_to_threshold()
    assert seconds is not None and seconds == pytest.approx(truth, rel=0.10)
    assert spool_forecast.status == "critical"  # within the week
    result = report(list(found.values()))
    assert result.outcome == "critical"
    [finding] = [f for f in result.findings if f.subject == "dir:spool"]
    assert "reaches 85.0%" in finding.what and "quota" in finding.what


def test_recordings_are_pruned_and_their_hours_kept(store: Store, tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    clock = ManualClock(START)
    recorder = Recorder(settings(tmp_path), store, clock, base_dir=tmp_path)
    for _ in range(6):
        recorder.record_once()
        clock.advance(EVERY)
    clock.advance(8 * 86400)  # past the week recordings are kept
    recorder.record_once()
    with store.session() as session:
        kept = session.scalars(select(CapacitySampleRow.at).where(CapacitySampleRow.resource == "dir:spool"))
        assert list(kept) == [clock.now().replace(microsecond=0)]
        # the first hour's six recordings live on as its mean
        hours = service.history(session, "dir:spool", now=clock.now())
        assert len(hours) == 2 and hours[0] == (START.timestamp() + 1800.0, 0.0)
