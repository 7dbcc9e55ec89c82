"""The backup pages through HTTP with a real store (SQLite and PostgreSQL): every policy's card
(last backup, each repository's newest copy against the RPO, 3-2-1, verification, drill, next
runs, problems) and one policy's page (its catalog with the copies in each repository, its
restores with their reports, a drill's RTO and RPO against the targets, its events). Backups and
restores are written with the backup service, on the plane's ManualClock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.auth.service import Role
from opsplane.backup import service
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.drivers.backup.base import BackupOutcome, StoredCopy
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.web.conftest import make_token

INVENTORY = """
platform: {name: shop}
databases:
  postgres-main: {port: 5432}
caches:
  sessions: {port: 6379}
backup:
  encryption_key: env:BACKUP_KEY
  repositories:
    local: {path: /srv/backups}
    offsite:
      type: s3
      s3: {endpoint: "s3.example.com", bucket: shop-backups,
           access_key: env:S3_KEY, secret_key: env:S3_SECRET}
  policies:
    postgres-main:
      data_dir: /var/lib/postgresql/16/main
      schedule: {full: "0 1 * * 0", incr: "*/15 * * * *"}
    sessions: {rpo: 1h}
"""
PAGES = ["/ui/backups", "/ui/backups/postgres-main"]
GiB = 2**30


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()  # Tuesday 2026-01-06 10:00:00 UTC


@pytest.fixture
def plane(store: Store, clock: ManualClock) -> Iterator[ControlPlane]:
    yield ControlPlane(loads(INVENTORY), store, clock=clock)


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane), follow_redirects=False)


def signed_in(client: TestClient, plane: ControlPlane, role: Role = Role.VIEWER) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane, role, name=f"{role.value}-bo")})
    assert answer.status_code == 303, answer.text
    return client


def backup(plane: ControlPlane, policy: str, engine: str, at: datetime, *repos: str, kind: str = "full",
           size: int = GiB, fail: str | None = None) -> int:
    """A backup of `policy` begun at `at`: complete 90 s later with a copy in each of `repos`,
    or failed with `fail`."""
    with plane.store.session() as session:
        row = service.begin(session, policy=policy, component=policy, engine=engine, kind=kind,
                            parent_id=None, trigger="schedule", actor="opsplane", now=at)
        if fail:
            service.fail(session, row, error=fail, actor="opsplane", now=at + timedelta(seconds=5))
        else:
            service.complete(session, row, BackupOutcome(
                kind=kind, started=at, finished=at + timedelta(seconds=90), size_bytes=size,
                copies=tuple(StoredCopy(repo, f"{policy}-{row.id}-{repo}", size // 3) for repo in repos)),
                actor="opsplane", now=at + timedelta(seconds=90))
        return row.id


def restore(plane: ControlPlane, policy: str, purpose: str, at: datetime, backup_id: int, *, ok: bool = True,
            report: dict[str, object], error: str | None = None) -> int:
    with plane.store.session() as session:
        row = service.begin_restore(session, purpose=purpose, policy=policy, backup_id=backup_id,
                                    repository="offsite", target="scratch server",
                                    recovery_target=f"backup {backup_id}", actor="opsplane", now=at)
        service.finish_restore(session, row, ok=ok, report=report, error=error, actor="opsplane",
                               now=at + timedelta(minutes=2))
        return row.id


@pytest.fixture
def catalogued(plane: ControlPlane, clock: ManualClock) -> dict[str, int]:
    """postgres-main: a full backup 3 h ago and an incremental 10 min ago, both in local and
    offsite, the full one verified and drilled (RTO met, RPO missed). sessions: one good copy 3 h
    ago in local only, then a failed backup."""
    now = clock.now()
    full = backup(plane, "postgres-main", "pgbackrest", now - timedelta(hours=3), "local", "offsite",
                  size=3 * GiB)
    incr = backup(plane, "postgres-main", "pgbackrest", now - timedelta(minutes=10), "local", "offsite",
                  kind="incr", size=200 * 2**20)
    verify = restore(plane, "postgres-main", "verify", now - timedelta(hours=2), full,
                     report={"repository": "offsite", "seconds": 95.5, "problems": [],
                             "contents": {"public.orders": 5000, "public.products": 120}})
    drill = restore(plane, "postgres-main", "drill", now - timedelta(hours=1), full,
                    report={"rto_seconds": 420.0, "rpo_seconds": 1260.0, "repository": "offsite"})
    old = backup(plane, "sessions", "redis-rdb", now - timedelta(hours=3), "local", size=5 * 2**20)
    failed = backup(plane, "sessions", "redis-rdb", now - timedelta(minutes=20),
                    fail="redis-cli --rdb: Connection refused")
    return {"full": full, "incr": incr, "verify": verify, "drill": drill, "old": old, "failed": failed}


def card(html: str, policy: str) -> str:
    found = re.search(rf'<article class="backup-policy[^"]*" data-policy="{policy}".*?</article>', html, re.S)
    assert found, html
    return found.group(0)


def text(html: str) -> str:
    """The page's words, tags dropped and spaces squeezed."""
    return re.sub(r"\s+([,.;:)])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_backup_pages_need_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"


def test_a_viewer_reads_both_pages_and_the_nav_links_them(
        client: TestClient, plane: ControlPlane, catalogued: dict[str, int]) -> None:
    signed_in(client, plane, Role.VIEWER)
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        assert '<a href="/ui/backups" aria-current="page">Backups</a>' in answer.text


def test_the_list_shows_each_policys_figures(
        client: TestClient, plane: ControlPlane, catalogued: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/backups").text
    assert "2 policies" in html and "1 with problems" in html
    pg = card(html, "postgres-main")
    words = text(pg)
    assert 'data-state="sound"' in pg
    assert "pgbackrest of postgres-main" in words and "RPO 15 min, RTO 30 min" in words
    # the last backup: the incremental, its state, when, how long ago, its size
    assert (f"{catalogued['incr']} incr complete 2026-01-06 09:51:30 UTC (8 min ago, took 1 min 30 s), "
            "200 MiB") in words
    # each repository's newest point with its age and mark
    for repo in ("local", "offsite"):
        row = re.search(rf'<tr data-repository="{repo}" data-stale="no">.*?</tr>', pg, re.S)
        assert row, pg
        assert "2026-01-06 09:51:30 UTC" in row.group(0) and "8 min" in row.group(0)
        assert "ok" in text(row.group(0))
    assert "object-store, offsite" in words
    assert "met copies: live, local, offsite; media: disk, object-store; offsite: offsite" in words
    assert "Verified succeeded 2026-01-06 08:00:00 UTC (2 h ago, backup 1 from offsite)" in words
    assert "Drill succeeded 2026-01-06 09:00:00 UTC (60 min ago)" in words
    assert "incr 2026-01-06 10:15:00 UTC (in 15 min)" in words  # the soonest next run first
    assert 'class="problems"' not in pg


def test_the_list_names_a_failing_policys_problems(
        client: TestClient, plane: ControlPlane, catalogued: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/backups").text
    sessions = card(html, "sessions")
    words = text(sessions)
    assert 'data-state="failing"' in sessions and "state-critical" in sessions
    assert "redis-rdb of sessions" in words and "RPO 1 h, RTO 15 min" in words
    assert f"{catalogued['failed']} full failed" in words
    assert "redis-cli --rdb: Connection refused" in words
    assert re.search(r'<tr data-repository="local" data-stale="yes">.*?2 h 58 min.*?stale', sessions, re.S)
    assert re.search(r'<tr data-repository="offsite" data-stale="yes">.*?none.*?stale', sessions, re.S)
    assert "not met" in words
    problems = re.search(r'<ul class="problems">(.*?)</ul>', sessions, re.S)
    assert problems, sessions
    items = [text(item).strip() for item in re.findall(r"<li>(.*?)</li>", problems.group(1), re.S)]
    assert items == [
        "the last 1 backup failed: redis-cli --rdb: Connection refused",
        "local: newest good copy 2 h 58 min old, RPO 1 h",
        "offsite: no good copy in offsite, RPO 1 h",
        "only 2 copies (live, local): 3 wanted",
        "all copies on one medium (disk)",
        "no offsite copy: offsite has no good backup",
    ]
    assert "Verified never" in words and "Drill never" in words


def test_the_policy_page_shows_its_catalog_restores_and_events(
        client: TestClient, plane: ControlPlane, catalogued: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/backups/postgres-main").text
    catalog = re.search(r'<section id="backup-catalog".*?</section>', html, re.S)
    assert catalog
    ids = [int(n) for n in re.findall(r'<tr id="backup-\d+" data-backup="(\d+)"', catalog.group(0))]
    assert ids == [catalogued["incr"], catalogued["full"]]  # newest first, only this policy's
    full = re.search(rf'<tr id="backup-{catalogued["full"]}".*?</tr>', catalog.group(0), re.S)
    assert full
    words = text(full.group(0))
    assert "full" in words and "complete" in words and "3 GiB" in words and "1 min 30 s" in words
    assert "local 1 GiB postgres-main-1-local" in words and "offsite 1 GiB postgres-main-1-offsite" in words
    assert "opsplane schedule" in words

    restores = re.search(r'<section id="backup-restores".*?</section>', html, re.S)
    assert restores
    drill = re.search(rf'<tr data-restore="{catalogued["drill"]}" data-purpose="drill".*?</tr>',
                      restores.group(0), re.S)
    assert drill
    drill_words = text(drill.group(0))
    assert "RTO 7 min (target 30 min): met" in drill_words
    assert "RPO 21 min (target 15 min): missed" in drill_words
    assert 'class="badge target-missed" data-target="RPO"' in drill.group(0)
    verify = re.search(rf'<tr data-restore="{catalogued["verify"]}" data-purpose="verify".*?</tr>',
                       restores.group(0), re.S)
    assert verify
    verify_words = text(verify.group(0))
    assert "seconds 1m 36s" in verify_words
    assert "contents public.orders 5,000, public.products 120" in verify_words
    assert "problems none" in verify_words

    events = re.search(r'<section id="backup-events".*?</section>', html, re.S)
    assert events
    kinds = re.findall(r"<code>([a-z_.]+)</code>", events.group(0))
    assert kinds[0] == "restore.succeeded" and "backup.completed" in kinds and "restore.started" in kinds
    assert "backup.started" in kinds and set(kinds) <= {"backup.started", "backup.completed",
                                                        "restore.started", "restore.succeeded"}
    assert "sessions" not in text(events.group(0))  # another policy's events stay on its page


def test_a_policy_page_shows_a_failed_backups_error(
        client: TestClient, plane: ControlPlane, catalogued: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/backups/sessions").text
    row = re.search(rf'<tr id="backup-{catalogued["failed"]}".*?</tr>', html, re.S)
    assert row and "redis-cli --rdb: Connection refused" in row.group(0) and "failed" in row.group(0)
    assert "No restore, verification or drill yet" in html
    assert "backup.failed" in html


def test_no_backups_yet_and_unknown_policies(client: TestClient, plane: ControlPlane) -> None:
    signed_in(client, plane)
    words = text(client.get("/ui/backups").text)
    assert "2 policies, 2 with problems" in words and "none yet" in words
    page = client.get("/ui/backups/postgres-main")
    assert page.status_code == 200 and "No backup yet" in page.text
    missing = client.get("/ui/backups/postgres")
    assert missing.status_code == 404
    assert "No backup policy postgres" in missing.text and "postgres-main, sessions" in missing.text


def test_policy_names_and_errors_are_escaped(client: TestClient, plane: ControlPlane,
                                             clock: ManualClock) -> None:
    backup(plane, "sessions", "redis-rdb", clock.now(), fail="<script>alert(1)</script>")
    html = signed_in(client, plane).get("/ui/backups").text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert client.get("/ui/backups/%3Cb%3E").status_code == 404
    assert "<b>" not in client.get("/ui/backups/%3Cb%3E").text.split("<main>")[1]
