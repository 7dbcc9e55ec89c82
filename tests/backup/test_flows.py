"""The backup flows over a real store with a plain engine of the test's own (the real engines
are tested against pgBackRest, restic, PostgreSQL and Redis in tests/drivers/backup and
tests/backup/test_engines_*): what is catalogued, when a backup counts as good, and what a
verification concludes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from opsplane.backup import service
from opsplane.backup.engines import CopyRef, Restored
from opsplane.backup.flows import BackupRuns, compare_contents, verify
from opsplane.backup.models import BackupPolicy, RetentionSettings
from opsplane.backup.policy import AppliedPolicy
from opsplane.clock import ManualClock
from opsplane.drivers.backup.base import BackupEngineError, BackupOutcome, Progress, Repository, StoredCopy
from opsplane.events.tables import Event
from opsplane.store import Store

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def policy(name: str = "sessions") -> AppliedPolicy:
    return AppliedPolicy(name=name, engine="redis-rdb", component=name, kinds={"full": "*/30 * * * *"},
                         repositories=("local", "offsite"), encryption_key="env:KEY", rpo=3600.0,
                         rto=900.0, verify="0 3 * * 0", drill="0 4 1 * *", retention=RetentionSettings(),
                         settings=BackupPolicy())


class DictEngine:
    """Keeps "backups" of a dict of key counts in memory, per repository."""

    def __init__(self, clock: ManualClock, data: dict[str, int]) -> None:
        self.policy = policy()
        self.repositories = tuple(Repository(name, f"/nowhere/{name}", "key")
                                  for name in ("local", "offsite"))
        self.clock, self.data = clock, data
        self.saved: dict[str, dict[str, dict[str, int]]] = {"local": {}, "offsite": {}}
        self.fail_with: str | None = None
        self.problems: dict[str, list[str]] = {}
        self.corrupt_restore = False

    def prepare(self) -> None:
        pass

    def backup(self, kind: str, progress: Progress) -> BackupOutcome:
        started = self.clock.now()
        progress("backup", 0.5)
        if self.fail_with:
            raise BackupEngineError(self.fail_with)
        label = f"snap-{len(self.saved['local']) + 1}"
        for repo in self.saved.values():
            repo[label] = dict(self.data)
        self.clock.advance(40)
        return BackupOutcome(kind="full", started=started, finished=self.clock.now(), size_bytes=100,
                             copies=tuple(StoredCopy(name, label) for name in self.saved),
                             facts={"contents": dict(self.data)})

    def held(self, repository: str) -> set[str]:
        return set(self.saved[repository])

    def check(self, repository: str) -> list[str]:
        return self.problems.get(repository, [])

    @contextmanager
    def restore_scratch(self, copy: CopyRef, scratch: Path, *,
                        at: datetime | None = None) -> Iterator[Restored]:
        contents = dict(self.saved[copy.repository][copy.label])
        if self.corrupt_restore:
            contents["db1"] -= 1
        self.clock.advance(12)
        yield Restored(address="127.0.0.1:1", contents=contents)

    def expire(self, repository: str, label: str) -> None:
        del self.saved[repository][label]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def kinds_of_events(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Event.kind).order_by(Event.id)))


def test_a_backup_that_wrote_every_copy_is_good_and_checked(store: Store, clock: ManualClock) -> None:
    engine = DictEngine(clock, {"db0": 10, "db1": 3})
    engine.problems["offsite"] = ["pack 3f2a: ciphertext verification failed"]
    seen: list[tuple[str, float | None]] = []
    runs = BackupRuns(store, clock=clock, holder="cli-1", actor="ana")
    try:
        result = runs.run(engine, kind="full", trigger="manual", progress=lambda p, f: seen.append((p, f)))
    finally:
        runs.close()
    assert (result.state, result.copies, result.seconds) == ("complete", ("local", "offsite"), 40.0)
    assert result.repository_problems == {"local": [],
                                          "offsite": ["pack 3f2a: ciphertext verification failed"]}
    assert ("backup", 0.5) in seen and ("check offsite", None) in seen
    with store.session() as session:
        [row] = service.good(session, policy="sessions")
        assert row.facts == {"contents": {"db0": 10, "db1": 3}} and row.requested_by == "ana"
        checks = service.last_repository_checks(session, policy="sessions")
        assert checks["offsite"].outcome == "failed" and checks["local"].outcome == "ok"
    assert kinds_of_events(store) == ["backup.started", "backup.completed", "backup.repository_checked",
                                      "backup.repository_checked"]


def test_a_backup_the_engine_could_not_finish_is_failed_with_its_reason(
        store: Store, clock: ManualClock) -> None:
    engine = DictEngine(clock, {"db0": 1})
    engine.fail_with = "restic backup failed (exit 1): repository offsite unreachable"
    runs = BackupRuns(store, clock=clock, holder="cli-1", actor="opsplane")
    try:
        result = runs.run(engine, kind="full", trigger="schedule")
    finally:
        runs.close()
    assert result.state == "failed" and "offsite unreachable" in (result.error or "")
    with store.session() as session:
        assert service.good(session, policy="sessions") == []
        [row] = service.get_all(session, policy="sessions")
        assert row.state == "failed" and row.error == result.error


def test_an_incremental_without_a_full_backup_is_taken_as_a_full_one(
        store: Store, clock: ManualClock) -> None:
    engine = DictEngine(clock, {"db0": 1})
    asked: list[str] = []
    original = engine.backup
    def asking(kind: str, progress: Progress) -> BackupOutcome:
        asked.append(kind)
        return original(kind, progress)
    engine.backup = asking  # type: ignore[method-assign]
    runs = BackupRuns(store, clock=clock, holder="cli-1", actor="opsplane")
    try:
        runs.run(engine, kind="incr", trigger="schedule", check_after=False)
        runs.run(engine, kind="incr", trigger="schedule", check_after=False)
    finally:
        runs.close()
    assert asked == ["full", "incr"]


def test_verification_restores_the_newest_backup_and_compares_what_it_holds(
        store: Store, clock: ManualClock, tmp_path: Path) -> None:
    engine = DictEngine(clock, {"db0": 10, "db1": 3})
    runs = BackupRuns(store, clock=clock, holder="cli-1", actor="opsplane")
    try:
        first = runs.run(engine, kind="full", trigger="schedule", check_after=False)
        engine.data["db1"] = 4
        second = runs.run(engine, kind="full", trigger="schedule", check_after=False)
    finally:
        runs.close()
    good = verify(store, engine, scratch=tmp_path, clock=clock, actor="opsplane")
    assert (good.backup_id, good.ok, good.repository, good.seconds) == (
        second.backup_id, True, "local", 12.0)
    engine.corrupt_restore = True
    bad = verify(store, engine, scratch=tmp_path, clock=clock, actor="opsplane",
                 backup_id=first.backup_id, repository="offsite")
    assert not bad.ok and bad.problems == ("db1: recorded 3, restored 2",)
    with store.session() as session:
        assert service.get(session, second.backup_id).state == "verified"
        assert service.get(session, first.backup_id).state == "verify-failed"
        drills = service.restores(session, policy="sessions", purpose="verify")
        assert [(r.state, r.error) for r in drills] == [("failed", "db1: recorded 3, restored 2"),
                                                       ("succeeded", None)]


def test_verifying_a_policy_without_a_good_backup_says_how_to_take_one(
        store: Store, clock: ManualClock, tmp_path: Path) -> None:
    with pytest.raises(service.NoSuchBackup, match="opsplane backup run sessions"):
        verify(store, DictEngine(clock, {}), scratch=tmp_path, clock=clock, actor="opsplane")


def test_contents_are_compared_table_by_table() -> None:
    assert compare_contents({"orders": 5, "users": 2}, {"orders": 5, "users": 2}) == []
    assert compare_contents({"orders": 5, "users": 2}, {"orders": 4, "carts": 1}) == [
        "carts: not recorded, 1 after the restore", "orders: recorded 5, restored 4",
        "users: recorded 2, missing after the restore"]




def test_pruning_removes_what_retention_drops_from_every_repository_and_keeps_the_minimum(
        store: Store, clock: ManualClock) -> None:
    from opsplane.backup.prune import prune

    engine = DictEngine(clock, {"db0": 1})
    engine.policy = replace(policy(), retention=RetentionSettings(daily=0, weekly=0, monthly=0,
                                                                  recovery_window=None, min_good=2))
    runs = BackupRuns(store, clock=clock, holder="cli-1", actor="opsplane")
    try:
        ids = []
        for _ in range(4):
            ids.append(runs.run(engine, kind="full", trigger="schedule", check_after=False).backup_id)
            clock.advance(3600)
    finally:
        runs.close()
    dry = prune(store, engine, time_zone="UTC", clock=clock, actor="ana", dry_run=True)
    assert dry.removed == () and len(engine.saved["local"]) == 4
    assert [d.keep for d in dry.plan.decisions] == [True, True, False, False]
    done = prune(store, engine, time_zone="UTC", clock=clock, actor="ana")
    assert sorted(done.removed) == ids[:2]
    assert sorted(engine.saved["local"]) == sorted(engine.saved["offsite"]) == ["snap-3", "snap-4"]
    with store.session() as session:
        assert [row.id for row in service.good(session, policy="sessions")] == ids[:1:-1]
        assert service.get(session, ids[0]).state == "expired"
    assert "backup.pruned" in kinds_of_events(store)
