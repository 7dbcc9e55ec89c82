"""The chain in real stores, SQLite and PostgreSQL: writers in several processes and threads
at once make one unbroken chain; a row changed or deleted behind opsplane's back (its guard
triggers dropped first, as someone with the database's owner rights could) is named by
`opsplane events verify`; a store upgraded from before the chain has its events chained."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.events import service
from opsplane.events.tables import Event
from opsplane.events.verify import verify_store
from opsplane.store import Store
from tests.events.checkout import command, subprocess_env

WRITER = """
import sys
from opsplane.events import service
from opsplane.store import Store

url, who, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store.open(url)
for n in range(count):
    with store.session() as session:
        service.record(session, kind="test.write", actor=who, target=str(n), outcome="ok",
                       details={"n": n, "f": 1.0, "pair": (n, 0.5)})
store.close()
"""


def record_some(store: Store, count: int, *, actor: str = "test") -> None:
    with store.session() as session:
        for n in range(count):
            service.record(session, kind="test.write", actor=actor, target=f"t{n}", outcome="ok",
                           details={"n": n, "big": 1e16, "tiny": 1e-05, "keys": {3: "three"}})


def tamper(store: Store, *statements: str) -> None:
    """Run `statements` with the event log's guard triggers out of the way."""
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_concurrent_writers_in_processes_and_threads_make_one_chain(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"process-{i}", "60"],
                                env=subprocess_env()) for i in range(3)]

    def in_thread(who: str) -> None:
        for n in range(60):
            with store.session() as session:
                service.record(session, kind="test.write", actor=who, target=str(n), outcome="ok",
                               details={"n": n})

    threads = [threading.Thread(target=in_thread, args=(f"thread-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    record_some(store, 30, actor="batch")
    for thread in threads:
        thread.join()
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]

    verification = verify_store(store)
    assert verification.intact, verification.result.problems
    assert verification.result.checked == 3 * 60 + 2 * 60 + 30
    with store.session() as session:
        ids = list(session.scalars(select(Event.id).order_by(Event.id)))
        by_actor = dict(session.execute(select(Event.actor, func.count()).group_by(Event.actor)).all())
    assert ids == list(range(1, len(ids) + 1))
    assert verification.state.head.id == ids[-1]
    assert by_actor == {"process-0": 60, "process-1": 60, "process-2": 60, "thread-0": 60, "thread-1": 60,
                        "batch": 30}


def test_an_edited_event_is_named_by_events_verify(store: Store, tmp_path: Path) -> None:
    record_some(store, 6)
    tamper(store, "UPDATE events SET outcome = 'failed' WHERE id = 4")
    cli = command(tmp_path, OPSPLANE_DATABASE_URL=store.engine.url.render_as_string(hide_password=False))
    ran = cli("events", "verify", code=2)
    assert "event 4: changed" in ran.stdout
    with store.session() as session:
        last = session.scalars(select(Event).order_by(Event.id.desc()).limit(1)).one()
    assert last.kind == "events.verified" and last.outcome == "broken"
    assert "event 4 was changed" in last.details["problems"][0]


def test_a_deleted_event_is_found(store: Store) -> None:
    record_some(store, 6)
    tamper(store, "DELETE FROM events WHERE id = 3")
    verification = verify_store(store)
    assert not verification.intact
    assert [(p.event_id, p.wrong) for p in verification.result.problems] == [(4, "missing")]
    assert "event 3 is missing" in verification.summary()


def test_events_after_the_checkpoint_cannot_be_updated_or_deleted(store: Store) -> None:
    record_some(store, 2)
    for statement in ("UPDATE events SET actor = 'x' WHERE id = 1", "DELETE FROM events WHERE id = 1"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert verify_store(store).intact


def test_verify_json_and_exit_code_of_an_intact_log(tmp_path: Path) -> None:
    cli = command(tmp_path)
    store = Store.open(cli.env["OPSPLANE_DATABASE_URL"])
    record_some(store, 3)
    store.close()
    found = cli.json("events", "verify")
    assert found["intact"] and found["checked"] == 3 and found["head"]["event_id"] == 3
    assert not found["starts_from"]["checkpoint"]
    again = cli.json("events", "verify")
    assert again["checked"] == 4  # the first verification's own event is in the chain


_databases = itertools.count()


@pytest.fixture
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store at revision 0017, before the chain, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        cluster: TemporaryPostgres = request.getfixturevalue("postgres_cluster")
        name = f"before_chain_{next(_databases)}"
        cluster.execute(f'CREATE DATABASE "{name}"')
        url = cluster.url(name)
    store = Store.open(url, migrate=False)
    store.upgrade("0017")
    try:
        yield store
    finally:
        store.close()


@pytest.mark.parametrize("old_store", ["sqlite", "postgresql"], indirect=True)
def test_an_upgraded_store_has_its_events_chained_in_id_order(old_store: Store) -> None:
    rows = [{"ts": datetime(2026, 1, 1, 0, n, tzinfo=UTC), "n": n} for n in range(1, 8)]
    with old_store.engine.begin() as connection:
        for row in rows:
            connection.execute(text("INSERT INTO events (ts, actor, kind, target, service, outcome, "
                                    "details) VALUES (:ts, 'old', 'check.state_changed', 'web', 'web', 'OK', "
                                    ":details)"),
                               {"ts": row["ts"] if old_store.engine.dialect.name == "postgresql"
                                else row["ts"].strftime("%Y-%m-%d %H:%M:%S.%f"),
                                "details": f'{{"n": {row["n"]}, "x": 2.0}}'})
        postgres = old_store.engine.dialect.name == "postgresql"
        connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER" if postgres
                                   else "DROP TRIGGER events_no_delete")
        connection.exec_driver_sql("DELETE FROM events WHERE id = 5")  # a gap from before the chain
        if postgres:
            connection.exec_driver_sql("ALTER TABLE events ENABLE TRIGGER USER")
    old_store.upgrade()
    verification = verify_store(old_store)
    assert verification.intact and verification.result.checked == 6
    assert verification.state.head.id == 7
    record_some(old_store, 1)
    with old_store.session() as session:
        newest = session.scalars(select(Event).order_by(Event.id.desc()).limit(1)).one()
    assert newest.id == 8 and newest.prev_hash == verification.state.head.hash
    assert verify_store(old_store).intact


@pytest.mark.parametrize("tampering", [
    None, "UPDATE events SET actor = 'x' WHERE id = 20", "DELETE FROM events WHERE id = 21",
    "DELETE FROM events WHERE id = 40"])
def test_a_walk_in_several_processes_finds_what_one_walk_finds(
        store: Store, monkeypatch: pytest.MonkeyPatch, tampering: str | None) -> None:
    from opsplane.events import verify

    record_some(store, 40)
    if tampering:
        tamper(store, tampering)
    one = verify_store(store)
    monkeypatch.setattr(verify, "PARALLEL_FROM", 10)
    with verify.snapshot(store) as connection:
        assert len(verify._stretches(connection, verify.chain_state(connection), 2)) == 2
    several = verify_store(store, processes=2)
    assert several.as_dict() == one.as_dict()
    assert several.intact == (tampering is None)
