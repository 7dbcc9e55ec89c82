"""The access review over a real store: tokens unused for 90 days (or never used and older) are
flagged to revoke, admin tokens listed for review, dashboard sessions counted; the same review
is the access-review job's report and `opsplane report access`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsplane.auth import service as tokens
from opsplane.auth import sessions
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.reports.jobs import JobEnv, get, run_and_save
from opsplane.security.access import collect, review
from opsplane.store import Store
from tests.support.cli import Opsplane

REPO = Path(__file__).resolve().parents[2]


def _platform(store: Store, clock: ManualClock) -> None:
    """Tokens made 120 days before `clock`'s time: one used yesterday, one last used 100 days
    ago, one never; an admin token used today; a token made a week ago and never used."""
    start = clock.now()
    clock = ManualClock(start - timedelta(days=120))
    with store.session() as session:
        active = tokens.create(session, name="ci", role=Role.OPERATOR, actor="cli:ana", clock=clock)
        stale = tokens.create(session, name="old-laptop", role=Role.VIEWER, actor="cli:ana", clock=clock)
        tokens.create(session, name="forgotten", role=Role.RESPONDER, actor="cli:bo", clock=clock)
        admin = tokens.create(session, name="root", role=Role.ADMIN, actor="cli:ana", clock=clock)
    clock = ManualClock(start - timedelta(days=100))
    with store.session() as session:
        tokens.authenticate(session, token=stale, clock=clock)
    clock = ManualClock(start - timedelta(days=7))
    with store.session() as session:
        tokens.create(session, name="new", role=Role.VIEWER, actor="cli:ana", clock=clock)
    clock = ManualClock(start - timedelta(days=1))
    with store.session() as session:
        tokens.authenticate(session, token=active, clock=clock)
    with store.session() as session:
        for _ in range(2):
            sessions.start(session, token=admin, client="10.0.0.5", now=start,
                           policy=sessions.SessionPolicy())


def test_the_review_flags_unused_tokens_and_lists_admin_ones(store: Store) -> None:
    clock = ManualClock()
    _platform(store, clock)
    with store.session() as session:
        found = review(collect(session), clock.now())
    flagged = {(f.severity, f.subject) for f in found.findings}
    assert ("warning", "token:old-laptop") in flagged  # last used 100 days ago
    assert ("warning", "token:forgotten") in flagged  # never used, made 120 days ago
    assert ("info", "token:root") in flagged  # an admin token: for review
    assert not {s for _, s in flagged} & {"token:ci", "token:new"}  # used yesterday; a week old
    assert found.sessions == 2
    data = found.as_dict(clock.now())
    root = next(t for t in data["tokens"] if t["name"] == "root")
    assert root["dashboard_sessions"] == 2 and root["created_by"] == "cli:ana" and root["last_used_at"]
    forgotten = next(t for t in data["tokens"] if t["name"] == "forgotten")
    assert forgotten["last_used_at"] is None
    assert "never used in the 120 days since cli:bo" in forgotten["flags"][0]


def test_the_access_review_job_keeps_a_warning_report(store: Store, tmp_path: Path) -> None:
    from opsplane.config import loads

    clock = ManualClock()
    _platform(store, clock)
    env = JobEnv(loads("platform: {name: shop}\n"), tmp_path, store, clock)
    row = run_and_save(get("access-review"), env, trigger="test", requested_by="cli:ana")
    assert row.outcome == "warning"
    assert "2 to revoke or renew: forgotten, old-laptop" in row.summary
    assert get("access-review").cron == "0 10 1 1,4,7,10 *"


def test_report_access_prints_the_review_and_exits_1_for_tokens_to_revoke(tmp_path: Path) -> None:
    run = Opsplane(tmp_path, {"platform": {"name": "shop"}}, {"PYTHONPATH": str(REPO)})
    store = Store.open(run.env["OPSPLANE_DATABASE_URL"])
    try:
        _platform(store, ManualClock(datetime.now(UTC)))
    finally:
        store.close()
    data = json.loads(run("report", "access", "--json", code=1).stdout)
    assert {t["name"] for t in data["tokens"]} == {"ci", "old-laptop", "forgotten", "root", "new"}
    assert data["outcome"] == "warning" and data["dashboard_sessions"] == 2
    table = run("report", "access", code=1).stdout
    assert "old-laptop" in table and "never" in table and "opsplane token revoke forgotten" in table
