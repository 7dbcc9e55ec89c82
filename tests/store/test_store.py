"""The store on SQLite and on a real PostgreSQL cluster: migrations, the event log, tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.errors import AuthError, StoreError, UsageError
from opsplane.events import service as events
from opsplane.store import NoStoreYet, Store, default_url
from opsplane.store.db import HEAD_REVISION, alembic_config
from opsplane.store.tables import metadata


def test_default_is_sqlite_under_dot_opsplane(tmp_path) -> None:
    assert default_url({}, base=tmp_path) == f"sqlite:///{tmp_path}/.opsplane/opsplane.db"
    assert default_url({"OPSPLANE_DATABASE_URL": "postgresql://x/y"}) == "postgresql://x/y"


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert (tmp_path / "o.db").exists()


def test_migrations_create_exactly_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, metadata)
    assert diff == []
    assert store.current_revision() == HEAD_REVISION


def test_upgrade_twice_is_harmless(store: Store) -> None:
    store.upgrade()
    assert store.current_revision() == HEAD_REVISION


def test_events_round_trip_with_details_and_time(store: Store) -> None:
    clock = ManualClock()
    with store.session() as session:
        events.record(session, kind="check.state_changed", actor="system:test", target="backend/http",
                      service="backend", outcome="CRITICAL",
                      details={"from": "OK", "to": "CRITICAL", "reason": "HTTP 503"}, clock=clock)
    with store.session() as session:
        [event] = events.get_all(session)
        assert event.ts == clock.now()
        assert event.details == {"from": "OK", "to": "CRITICAL", "reason": "HTTP 503"}
        assert event.as_dict()["service"] == "backend"


def test_event_log_is_append_only(store: Store) -> None:
    with store.session() as session:
        events.record(session, kind="token.created", actor="a", target="t", outcome="success")
    for statement in ("UPDATE events SET outcome = 'forged'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.session() as session:
                session.execute(text(statement))
    with store.session() as session:
        assert [e.outcome for e in events.get_all(session)] == ["success"]


def test_event_filters(store: Store) -> None:
    clock = ManualClock()
    with store.session() as session:
        for i, (kind, service) in enumerate([
            ("check.state_changed", "backend"), ("check.state_changed", "redis"),
            ("token.created", None), ("check.state_changed", "backend"),
        ]):
            events.record(session, kind=kind, actor="a", target=f"t{i}", service=service,
                          outcome="x", clock=clock)
            clock.advance(60)
    start = clock.now() - timedelta(minutes=4)
    with store.session() as session:
        assert [e.target for e in events.get_all(session, service="backend")] == ["t3", "t0"]
        assert [e.target for e in events.get_all(session, kind="check.*")] == ["t3", "t1", "t0"]
        assert [e.target for e in events.get_all(session, kind="token.created")] == ["t2"]
        window = events.get_all(session, since=start + timedelta(minutes=1),
                                until=start + timedelta(minutes=3))
        assert [e.target for e in window] == ["t2", "t1"]
        newest = events.get_all(session, limit=2)
        older = events.get_all(session, before_id=newest[-1].id, limit=2)
        assert [e.target for e in newest + list(older)] == ["t3", "t2", "t1", "t0"]


def test_tokens_are_stored_hashed_and_checked_by_role(store: Store) -> None:
    with store.session() as session:
        secret = tokens.create(session, name="ci", role=Role.RESPONDER, actor="cli:test")
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash, prefix FROM api_tokens")).one()
    assert secret not in stored and stored.token_hash == tokens.hash_token(secret)
    with store.session() as session:
        principal = tokens.authenticate(session, token=secret)
    assert principal.name == "ci" and principal.role is Role.RESPONDER
    assert principal.role.allows(Role.VIEWER) and not principal.role.allows(Role.OPERATOR)
    with store.session() as session:
        kinds = [e.kind for e in events.get_all(session)]
    assert kinds == ["token.created"]


def test_revoked_and_unknown_tokens_are_refused(store: Store) -> None:
    with store.session() as session:
        secret = tokens.create(session, name="old", role=Role.ADMIN, actor="cli:test")
        tokens.revoke(session, name="old", actor="cli:test")
    with store.session() as session, pytest.raises(AuthError, match="revoked"):
        tokens.authenticate(session, token=secret)
    with store.session() as session, pytest.raises(AuthError):
        tokens.authenticate(session, token="ops_" + "x" * 43)
    with store.session() as session, pytest.raises(UsageError, match="no active token"):
        tokens.revoke(session, name="old", actor="cli:test")


def test_duplicate_token_name_is_a_clear_error(store: Store) -> None:
    with store.session() as session:
        tokens.create(session, name="ci", role=Role.VIEWER, actor="cli:test")
    with store.session() as session, pytest.raises(UsageError, match="already exists"):
        tokens.create(session, name="ci", role=Role.VIEWER, actor="cli:test")


def test_unreachable_database_is_a_store_error(free_port) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(f"postgresql://opsplane@127.0.0.1:{free_port}/none?connect_timeout=2")


def test_alembic_config_points_at_the_packaged_migrations() -> None:
    config = alembic_config()
    assert config.get_main_option("script_location").endswith("store/migrations")


def test_head_revision_names_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert HEAD_REVISION == head, "a migration was added: set store.db.HEAD_REVISION to its revision"


def test_opening_a_store_at_head_does_not_load_alembic(tmp_path) -> None:
    # A fresh interpreter: alembic must not be imported when the schema is already current.
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/opsplane.db"
    Store.open(url).close()
    probe = ("import sys; from opsplane.store import Store; Store.open(sys.argv[1]).close(); "
             "print('alembic' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_opening_a_new_store_at_once_migrate_it_once(backend, request, tmp_path) -> None:
    # `opsplane up` and `opsplane serve` started together on a fresh store: both must open it.
    import subprocess
    import sys

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/opsplane.db"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        cluster.execute('CREATE DATABASE "concurrent_open"')
        url = cluster.url("concurrent_open")
    opener = "import sys; from opsplane.store import Store; Store.open(sys.argv[1]).close()"
    openers = [subprocess.Popen([sys.executable, "-c", opener, url], stderr=subprocess.PIPE, text=True)
               for _ in range(6)]
    failures = [p.stderr.read() for p in openers if p.wait(60) != 0]  # type: ignore[union-attr]
    assert failures == []
    store = Store.open(url)
    try:
        assert store.current_revision() == HEAD_REVISION
    finally:
        store.close()


def test_a_migration_that_fails_half_way_leaves_nothing_behind_on_sqlite(tmp_path) -> None:
    # A kill or a crash mid-upgrade must not leave tables without the revision that made them,
    # or every later open fails on "table already exists".
    url = f"sqlite:///{tmp_path}/opsplane.db"
    store = Store.open(url, migrate=False)
    store.upgrade("0001")
    with store.engine.begin() as connection:  # a later migration will meet this and fail
        connection.execute(text("CREATE TABLE incidents (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreError, match="table incidents already exists"):
        store.upgrade()
    listed = text("SELECT name FROM sqlite_master WHERE type = 'table'")
    with store.engine.connect() as connection:
        tables = {row[0] for row in connection.execute(listed)}
    assert "alert_states" not in tables and "notification_outbox" not in tables
    assert store.current_revision() == "0001"
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE incidents"))
    store.upgrade()
    assert store.current_revision() == HEAD_REVISION
    store.close()


def test_opening_to_read_where_there_is_no_sqlite_file_creates_nothing(tmp_path) -> None:
    where = tmp_path / ".opsplane" / "opsplane.db"
    with pytest.raises(NoStoreYet, match=f"no store yet at {where}") as raised:
        Store.open(f"sqlite:///{where}", create=False)
    assert raised.value.exit_code == 3
    assert list(tmp_path.iterdir()) == []


def test_opening_to_read_an_empty_postgres_database_creates_no_tables(postgres_cluster) -> None:
    postgres_cluster.execute('CREATE DATABASE "nothing_yet"')
    url = postgres_cluster.url("nothing_yet")
    with pytest.raises(NoStoreYet, match="no store yet at postgresql"):
        Store.open(url, create=False)
    store = Store.open(url, migrate=False)
    try:
        assert store.tables() == []
    finally:
        store.close()


def test_opening_to_read_a_server_that_is_down_says_it_cannot_be_reached(free_port) -> None:
    url = f"postgresql://opsplane:x@127.0.0.1:{free_port}/opsplane"
    with pytest.raises(StoreError, match="cannot open the store") as raised:
        Store.open(url, create=False)
    assert not isinstance(raised.value, NoStoreYet)


def test_opening_to_read_an_existing_store_reads_what_was_recorded(store: Store) -> None:
    with store.session() as session:
        events.record(session, kind="token.created", actor="a", target="t", outcome="success")
    reader = Store.open(store.engine.url.render_as_string(hide_password=False), create=False)
    try:
        with reader.session() as session:
            assert [e.kind for e in events.get_all(session)] == ["token.created"]
    finally:
        reader.close()
