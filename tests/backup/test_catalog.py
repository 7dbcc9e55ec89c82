"""The backup catalog on both stores: only finished backups are good, one cut off half-way is
failed once its holder is gone, each repository's newest good copy, and an event for every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from opsplane.backup import service
from opsplane.drivers.backup.base import BackupOutcome, StoredCopy
from opsplane.events.tables import Event
from opsplane.store import Store, claims

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def outcome(start: datetime, *repos: str, kind: str = "full") -> BackupOutcome:
    return BackupOutcome(kind=kind, started=start, finished=start + timedelta(minutes=3), size_bytes=4096,
                         copies=tuple(StoredCopy(repo, f"label-{repo}", 1024) for repo in repos),
                         checksum="ab" * 32, facts={"tables": {"orders": 10}})


def backed_up(store: Store, start: datetime, *repos: str) -> int:
    with store.session() as session:
        row = service.begin(session, policy="shop-db", component="shop-db", engine="pgbackrest",
                            kind="full", parent_id=None, trigger="manual", actor="ana", now=start)
        service.complete(session, row, outcome(start, *repos), actor="ana", now=start + timedelta(minutes=3))
        return row.id


def test_a_backup_is_good_only_once_it_completed(store: Store) -> None:
    with store.session() as session:
        running = service.begin(session, policy="shop-db", component="shop-db", engine="pgbackrest",
                                kind="full", parent_id=None, trigger="schedule", actor="opsplane", now=T0)
        assert service.good(session, policy="shop-db") == []
        failed = service.begin(session, policy="shop-db", component="shop-db", engine="pgbackrest",
                               kind="full", parent_id=None, trigger="schedule", actor="opsplane", now=T0)
        service.fail(session, failed, error="pgbackrest backup failed (exit 82)", actor="opsplane", now=T0)
        running_id = running.id
    done = backed_up(store, T0 + timedelta(hours=1), "local", "offsite")
    with store.session() as session:
        assert [row.id for row in service.good(session, policy="shop-db")] == [done]
        row = service.get(session, done)
        assert (row.state, row.size_bytes, row.facts) == ("complete", 4096, {"tables": {"orders": 10}})
        held = service.copies(session, [done])[done]
        assert [(c.repository, c.label) for c in held] == [("local", "label-local"),
                                                           ("offsite", "label-offsite")]
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
        assert kinds == ["backup.started", "backup.started", "backup.failed", "backup.started",
                         "backup.completed"]
        assert service.get(session, running_id).state == "running"


def test_a_backup_cut_off_half_way_is_failed_once_its_claim_lapsed(store: Store) -> None:
    with store.session() as session:
        row = service.begin(session, policy="shop-db", component="shop-db", engine="pgbackrest",
                            kind="full", parent_id=None, trigger="schedule", actor="opsplane", now=T0)
        claim = claims.take(session, service.RUN_CLAIM.format(id=row.id), holder="serve-1", now=T0, lease=30)
        assert claim is not None
        backup_id = row.id
    with store.session() as session:
        assert service.sweep_cut_off(session, now=T0 + timedelta(seconds=20)) == []
    with store.session() as session:
        swept = service.sweep_cut_off(session, now=T0 + timedelta(seconds=31))
        assert [row.id for row in swept] == [backup_id]
    with store.session() as session:
        row = service.get(session, backup_id)
        assert row.state == "failed" and "cut off" in (row.error or "")
        assert service.good(session, policy="shop-db") == []


def test_each_repository_has_its_own_newest_good_copy(store: Store) -> None:
    older = backed_up(store, T0, "local", "offsite")
    newer = backed_up(store, T0 + timedelta(hours=1), "local")
    with store.session() as session:
        newest = service.newest_good_by_repository(session, policy="shop-db")
        assert {repo: row.id for repo, row in newest.items()} == {"local": newer, "offsite": older}
        copy = service.copies(session, [older])[older][1]
        service.mark_copy_missing(session, copy, actor="opsplane", now=T0 + timedelta(hours=2))
    with store.session() as session:
        assert "offsite" not in service.newest_good_by_repository(session, policy="shop-db")


def test_a_verification_and_a_drill_keep_their_reports(store: Store) -> None:
    done = backed_up(store, T0, "local")
    with store.session() as session:
        restore = service.begin_restore(session, purpose="drill", policy="shop-db", backup_id=done,
                                        repository="local", target="scratch cluster",
                                        recovery_target="latest", actor="opsplane",
                                        now=T0 + timedelta(hours=1))
        service.finish_restore(session, restore, ok=True, report={"rto_seconds": 41.5, "rpo_seconds": 1.2},
                               error=None, actor="opsplane", now=T0 + timedelta(hours=1, seconds=42))
        service.record_verification(session, service.get(session, done), ok=False,
                                    report={"problem": "row counts differ: orders 10 -> 9"}, actor="opsplane",
                                    now=T0 + timedelta(hours=2))
    with store.session() as session:
        [drill] = service.restores(session, policy="shop-db", purpose="drill")
        assert (drill.state, drill.report["rto_seconds"]) == ("succeeded", 41.5)
        assert service.get(session, done).state == "verify-failed"
        assert service.good(session, policy="shop-db") == []
        last = session.scalars(select(Event).order_by(Event.id.desc())).first()
        assert last is not None and last.kind == "backup.verify_failed"
        assert last.details["problem"] == "row counts differ: orders 10 -> 9"
