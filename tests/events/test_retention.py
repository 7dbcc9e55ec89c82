"""Retention and the weekly check as the scheduled jobs run them, on a clock the test sets, in
SQLite and PostgreSQL stores: events older than `at_hand` move to a signed archive and leave
the store, the chain still verifies from the checkpoint and says so, the archive checks with
the public key, an archive older than `keep` is deleted; a broken chain is a critical report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.errors import ConfigError
from opsplane.events import export, service
from opsplane.events.keys import PRIVATE_NAME, PUBLIC_NAME, generate, public_key
from opsplane.events.tables import Event
from opsplane.events.verify import verify_store
from opsplane.reports import jobs
from opsplane.reports.jobs import JobEnv
from opsplane.store import Store

INVENTORY = """
platform: {name: shop}
jobs: {}
audit:
  archive_dir: audit-archive
"""
START = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate(tmp_path / "keys")
    return tmp_path / "keys"


def env_for(store: Store, tmp_path: Path, keys: Path, clock: ManualClock) -> JobEnv:
    return JobEnv(loads(INVENTORY), tmp_path, store, clock,
                  environ={"OPSPLANE_AUDIT_KEY_FILE": str(keys / PRIVATE_NAME)})


def a_day_each(store: Store, days: int, start: datetime = START) -> None:
    with store.session() as session:
        for day in range(days):
            service.record(session, kind="check.state_changed", actor="opsplane", target=f"web:{day}",
                           service="web", outcome="OK", ts=start + timedelta(days=day),
                           details={"from": "CRITICAL", "reason": "200 OK", "day": day})


def test_old_events_move_to_a_signed_archive_and_the_chain_still_verifies(
        store: Store, tmp_path: Path, keys: Path) -> None:
    a_day_each(store, 150)  # 1 January to 30 May
    clock = ManualClock(START + timedelta(days=150))
    env = env_for(store, tmp_path, keys, clock)
    row = jobs.run_and_save(jobs.get("audit-retention"), env, trigger="schedule", requested_by="opsplane")
    assert row.outcome == "ok", row.summary
    # the cutoff is 90 days back: days 0..59 go, day 60 on stay
    archive = tmp_path / "audit-archive" / "events-000000000001-000000000060.jsonl"
    assert row.body["archive"] == archive.name and row.body["moved"] == 60
    checked = export.check(archive, public_key(keys / PUBLIC_NAME))
    assert checked.ok, checked.problems
    assert checked.manifest["kind"] == "archive" and checked.manifest["events"] == 60
    with store.session() as session:
        left = list(session.scalars(select(Event.id).where(Event.kind == "check.state_changed")))
        archived = session.scalars(select(Event).where(Event.kind == "events.archived")).one()
    assert left == list(range(61, 151))
    assert archived.details["last"] == 60
    assert archived.details["checkpoint_hash"] == checked.manifest["last"]["hash"]

    verification = verify_store(store)
    assert verification.intact, verification.result.problems
    assert verification.state.checkpoint.id == 60
    assert verification.state.checkpoint.hash == checked.manifest["last"]["hash"]
    assert "from the checkpoint after archived event 60" in verification.summary()

    again = jobs.run_and_save(jobs.get("audit-retention"), env, trigger="cli", requested_by="ana")
    assert again.body["moved"] == 0 and again.summary == "no events older than at_hand"

    # day 434: the first archive's newest event (day 59) is more than `keep` (365 days) old,
    # the rest (days 60 to 150) are old enough to archive but not to delete
    clock.advance(timedelta(days=434 - 150).total_seconds())
    later = jobs.run_and_save(jobs.get("audit-retention"), env, trigger="schedule", requested_by="opsplane")
    assert later.body["deleted"] == [archive.name] and not archive.exists()
    assert later.body["archive"] is not None  # the rest, now old too, moved into a second archive
    assert verify_store(store).intact
    second = tmp_path / "audit-archive" / later.body["archive"]
    assert export.check(second, public_key(keys / PUBLIC_NAME)).ok


def test_retention_without_the_key_is_a_failed_report_and_moves_nothing(store: Store, tmp_path: Path,
                                                                       keys: Path) -> None:
    a_day_each(store, 120)
    env = env_for(store, tmp_path, keys, ManualClock(START + timedelta(days=120)))
    env.environ = {}
    row = jobs.run_and_save(jobs.get("audit-retention"), env, trigger="schedule", requested_by="opsplane")
    assert row.outcome == "failed" and "OPSPLANE_AUDIT_KEY_FILE is not set" in row.summary
    assert verify_store(store).result.checked == 121  # the events, and the report.saved event


def test_a_broken_chain_is_never_archived(store: Store, tmp_path: Path, keys: Path) -> None:
    a_day_each(store, 120)
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER events_no_update")
        else:
            connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
        connection.exec_driver_sql("UPDATE events SET outcome = 'CRITICAL' WHERE id = 7")
    env = env_for(store, tmp_path, keys, ManualClock(START + timedelta(days=120)))
    row = jobs.run_and_save(jobs.get("audit-retention"), env, trigger="schedule", requested_by="opsplane")
    assert row.outcome == "critical" and "event 7 was changed" in row.summary
    assert not list((tmp_path / "audit-archive").glob("*.jsonl"))
    assert verify_store(store).state.checkpoint.id == 0


def test_the_weekly_check_is_critical_when_the_chain_is_broken(store: Store, tmp_path: Path,
                                                             keys: Path) -> None:
    a_day_each(store, 5)
    env = env_for(store, tmp_path, keys, ManualClock(START + timedelta(days=5)))
    clean = jobs.run_and_save(jobs.get("audit-verify"), env, trigger="schedule", requested_by="opsplane")
    assert clean.outcome == "ok" and clean.body["intact"]
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER events_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
        connection.exec_driver_sql("DELETE FROM events WHERE id = 2")
    broken = jobs.run_and_save(jobs.get("audit-verify"), env, trigger="schedule", requested_by="opsplane")
    assert broken.outcome == "critical" and broken.counts["critical"] == 1
    assert broken.findings[0]["subject"] == "event 3" and "event 2 is missing" in broken.findings[0]["what"]
    with store.session() as session:
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id.desc()).limit(2))]
    assert kinds == ["report.saved", "events.verified"]


def test_the_audit_section_is_checked_where_it_is_written() -> None:
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\naudit:\n  archive_dir: a\n  at_hand: 90d\n  keep: 30d\n")
    said = str(caught.value)
    assert "opsplane.yaml:3:3: audit: keep is shorter than at_hand" in said
    settings = loads("platform: {name: shop}\naudit: {archive_dir: a}\n").audit
    assert settings is not None and (settings.at_hand, settings.keep) == (90 * 86400.0, 365 * 86400.0)
