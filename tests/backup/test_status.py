"""Where a policy stands, read from the catalog: freshness against the RPO per repository,
3-2-1, failures in a row, verification and drills overdue; and the alert series that follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.pack import builtin_rules
from opsplane.backup import service
from opsplane.backup.policy import apply
from opsplane.backup.series import backup_samples
from opsplane.backup.status import policy_status
from opsplane.config.loader import loads
from opsplane.drivers.backup.base import BackupOutcome, StoredCopy
from opsplane.store import Store

INVENTORY = loads("""\
version: 1
platform: {name: shop}
caches:
  sessions: {port: 6379}
backup:
  encryption_key: env:BACKUP_KEY
  repositories:
    local: {}
    offsite:
      type: s3
      s3: {endpoint: "127.0.0.1:9000", bucket: shop-backups,
           access_key: env:S3_KEY, secret_key: env:S3_SECRET}
  policies:
    sessions: {schedule: "0 * * * *", rpo: 1h}
""")
POLICY = apply(INVENTORY, "sessions")
# Sunday 6 December 2026: the weekly verification's slot (Sunday 03:00) is at 03:00 today.
T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def backup(store: Store, at: datetime, *repos: str, fail: str | None = None) -> int:
    with store.session() as session:
        row = service.begin(session, policy="sessions", component="sessions", engine="redis-rdb", kind="full",
                            parent_id=None, trigger="schedule", actor="opsplane", now=at)
        if fail:
            service.fail(session, row, error=fail, actor="opsplane", now=at + timedelta(seconds=5))
        else:
            service.complete(session, row, BackupOutcome(
                kind="full", started=at, finished=at + timedelta(seconds=30), size_bytes=10,
                copies=tuple(StoredCopy(repo, f"s-{repo}") for repo in repos)), actor="opsplane",
                now=at + timedelta(seconds=30))
        return row.id


def status_at(store: Store, now: datetime):  # type: ignore[no-untyped-def]
    with store.session() as session:
        return policy_status(session, INVENTORY, POLICY, now=now)


def names(samples: list) -> dict[str, dict[str, str]]:  # type: ignore[type-arg]
    return {dict(labels)["__name__"]: dict(labels) for labels, _ in samples}


def test_a_policy_with_fresh_copies_in_both_repositories_is_sound(store: Store) -> None:
    backup(store, T0, "local", "offsite")
    status = status_at(store, T0 + timedelta(minutes=40))
    assert status.problems == [] and status.compliance.meets_321
    assert status.next_runs == {"full": datetime(2026, 12, 6, 2, 0, tzinfo=UTC)}
    assert backup_samples([status], env="production") == []


def test_a_copy_older_than_the_rpo_is_stale_in_its_repository(store: Store) -> None:
    backup(store, T0, "local", "offsite")
    backup(store, T0 + timedelta(hours=1), "local")
    status = status_at(store, T0 + timedelta(hours=1, minutes=30))
    assert [v.repository for v in status.compliance.stale] == ["offsite"]
    assert "offsite: newest good copy 1 h 29 min old, RPO 1 h" in status.problems
    [(labels, value)] = backup_samples([status], env="production")
    assert dict(labels) == {"__name__": "opsplane_backup_stale_seconds", "policy": "sessions",
                            "engine": "redis-rdb", "env": "production", "job": "opsplane",
                            "repository": "offsite", "service": "sessions"}
    assert value == 89 * 60 + 30  # finished 30 s after it started at 01:00


def test_failures_in_a_row_and_a_missing_offsite_copy_are_named(store: Store) -> None:
    backup(store, T0, "local")
    backup(store, T0 + timedelta(minutes=20), fail="restic backup failed (exit 1): offsite refused")
    backup(store, T0 + timedelta(minutes=40), fail="restic backup failed (exit 1): offsite refused")
    status = status_at(store, T0 + timedelta(minutes=50))
    assert status.failures_in_a_row == 2 and status.missing_offsite == ("offsite",)
    assert "no offsite copy: offsite has no good backup" in status.compliance.violations
    found = names(backup_samples([status], env="production"))
    assert found["opsplane_backup_failed"]["kind"] == "full"
    assert found["opsplane_backup_offsite_missing"]["repository"] == "offsite"


def test_a_verification_not_run_in_its_weekly_slot_is_overdue(store: Store) -> None:
    backup(store, T0, "local", "offsite")
    on_time = status_at(store, T0 + timedelta(hours=2, minutes=20))  # 03:20, slot 03:00, RTO 15 min
    assert on_time.verify_overdue == 0
    late = status_at(store, T0 + timedelta(hours=3))  # 04:00: slot + RTO + 10 min grace passed 35 min ago
    assert late.verify_overdue == 35 * 60
    assert "verification overdue by 35 min" in late.problems


def test_every_backup_series_has_a_rule_that_reads_it() -> None:
    exprs = " ".join(rule.expr for rule in builtin_rules(AlertingSettings().builtin_rules))
    for name in ("opsplane_backup_failed", "opsplane_backup_stale_seconds", "opsplane_backup_verify_failed",
                 "opsplane_backup_offsite_missing", "opsplane_backup_drill_overdue_seconds"):
        assert name in exprs


def test_a_broken_wal_archive_is_a_problem_and_a_series_naming_since_when(store: Store) -> None:
    backup(store, T0, "local", "offsite")
    since = T0 + timedelta(minutes=10)
    with store.session() as session:
        service.record_archive(session, policy="sessions", component="sessions", repository="offsite",
                               broken_since=since, reason="segments are missing", actor="opsplane",
                               now=T0 + timedelta(minutes=12))
    physical = apply(INVENTORY, "sessions")
    physical = physical.__class__(**{**physical.__dict__, "engine": "pgbackrest"})
    with store.session() as session:
        status = policy_status(session, INVENTORY, physical, now=T0 + timedelta(minutes=20))
    assert status.archive_broken == {"offsite": (since, "segments are missing")}
    assert any("WAL archive in offsite broken" in problem for problem in status.problems)
    found = names(backup_samples([status], env="production"))
    assert found["opsplane_backup_pitr_broken_seconds"]["since"] == "2026-12-06T01:10:00+00:00"
    with store.session() as session:
        service.record_archive(session, policy="sessions", component="sessions", repository="offsite",
                               broken_since=None, reason="complete again", actor="opsplane",
                               now=T0 + timedelta(minutes=25))
        assert service.archive_breaks(session, policy="sessions") == {}


def test_a_wal_archive_that_reaches_further_than_the_backups_keeps_a_repository_fresh(store: Store) -> None:
    backup(store, T0, "local", "offsite")
    physical = apply(INVENTORY, "sessions")
    physical = physical.__class__(**{**physical.__dict__, "engine": "pgbackrest"})
    now = T0 + timedelta(hours=3)
    with store.session() as session:
        status = policy_status(session, INVENTORY, physical, now=now,
                               archived={"local": now - timedelta(seconds=40)})
    fresh = {verdict.repository: verdict for verdict in status.compliance.freshness}
    assert not fresh["local"].stale and fresh["local"].measured == "archive"
    assert fresh["offsite"].stale  # its archive is not complete: its backup is all a restore reaches


def test_a_policy_whose_first_backup_is_still_running_raises_nothing(store: Store) -> None:
    with store.session() as session:
        service.begin(session, policy="sessions", component="sessions", engine="redis-rdb", kind="full",
                      parent_id=None, trigger="schedule", actor="opsplane", now=T0)
    status = status_at(store, T0 + timedelta(seconds=20))
    assert status.missing_offsite == () and backup_samples([status], env="production") == []
    later = status_at(store, T0 + timedelta(hours=1, minutes=1))  # still nothing after the RPO
    assert names(backup_samples([later], env="production"))["opsplane_backup_stale_seconds"]
