"""The PgBouncer driver: the [databases] entry rewritten with everything else kept, and against a
real PgBouncer in front of real PostgreSQL clusters: PAUSE makes clients wait rather than fail,
a PAUSE held up by an open transaction gives up and leaves nothing paused, and a repoint moves
the clients to another server."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsplane.drivers.pgbouncer import PgBouncer, PgBouncerError, database_entry, repointed
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.postgres import TemporaryPostgres

INI = """\
; the shop's pool
[databases]
shop = host=10.0.0.5 port=5432 dbname=shop pool_size=40   ; the primary
"reports db" = host=10.0.0.5 port=5432 dbname=reports
"sessions" = host=10.0.0.9 dbname=sessions password='it''s secret'

[pgbouncer]
listen_port = 6432
; host = not a database
"""


def test_repointing_changes_host_and_port_of_that_entry_only() -> None:
    changed = repointed(INI, "shop", "10.0.0.6", 5433)
    assert database_entry(changed, "shop") == {"host": "10.0.0.6", "port": "5433", "dbname": "shop",
                                               "pool_size": "40"}
    before, after = INI.splitlines(), changed.splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [2]
    assert after[2] == "shop = host=10.0.0.6 port=5433 dbname=shop pool_size=40   ; the primary"


def test_an_entry_without_a_port_gets_one_and_quoted_values_stay_as_written() -> None:
    changed = repointed(INI, "sessions", "db-2.internal", 6000)
    assert database_entry(changed, "sessions") == {"host": "db-2.internal", "dbname": "sessions",
                                                   "password": "it's secret", "port": "6000"}
    assert "password='it''s secret'" in changed
    assert database_entry(repointed(INI, "reports db", "10.0.0.7", 5432), "reports db") == {
        "host": "10.0.0.7", "port": "5432", "dbname": "reports"}


def test_a_database_without_an_entry_is_named_in_the_error() -> None:
    assert database_entry(INI, "host") is None  # a line of [pgbouncer], not a database
    with pytest.raises(PgBouncerError, match="no entry for database 'orders'"):
        repointed(INI, "orders", "10.0.0.6", 5432)


# --- against a real PgBouncer -------------------------------------------------------------

Pair = tuple[TemporaryPostgres, TemporaryPostgres]


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two independent clusters, each with a table `hits` naming the cluster."""
    base = tmp_path_factory.mktemp("pgbouncer-pg")
    with TemporaryPostgres(base / "a") as first, TemporaryPostgres(base / "b") as second:
        for cluster, name in ((first, "a"), (second, "b")):
            cluster.execute("create table hits (cluster text)")
            cluster.execute("insert into hits values (%s)", (name,))
        yield first, second


@pytest.fixture
def bouncer(tmp_path: Path, clusters: Pair) -> Iterator[TemporaryPgBouncer]:
    first, _ = clusters
    with TemporaryPgBouncer(tmp_path, {"shop": Backend(first.host, first.port)}) as started:
        yield started


def _client(bouncer: TemporaryPgBouncer) -> psycopg.Connection[Any]:
    # Transaction pooling: no server-side prepared statements.
    return psycopg.connect(bouncer.url("shop"), autocommit=True, prepare_threshold=None, connect_timeout=3)


def _cluster_of(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("select cluster from hits").fetchone()
    assert row is not None
    return str(row[0])


def test_the_admin_console_shows_the_database_and_its_pool(bouncer: TemporaryPgBouncer,
                                                           clusters: tuple[TemporaryPostgres, ...]) -> None:
    with _client(bouncer) as client, bouncer.admin() as console:
        assert _cluster_of(client) == "a"
        entry = console.database("shop")
        assert (entry["host"], entry["port"], entry["paused"]) == ("127.0.0.1", clusters[0].port, 0)
        pools = [pool for pool in console.show_pools() if pool["database"] == "shop"]
        assert pools and pools[0]["user"] == "postgres"
        with pytest.raises(PgBouncerError, match="no database 'orders'"):
            console.database("orders")


def test_clients_wait_while_paused_and_go_on_after_resume(bouncer: TemporaryPgBouncer) -> None:
    answers: list[tuple[str, float]] = []
    with _client(bouncer) as client, bouncer.admin() as console:
        console.pause("shop", timeout=5)
        assert console.database("shop")["paused"] == 1
        waiting = threading.Thread(target=lambda: answers.append((_cluster_of(client), time.monotonic())))
        waiting.start()
        time.sleep(0.4)
        assert not answers  # queued in PgBouncer, not failed
        assert sum(pool["cl_waiting"] for pool in console.show_pools() if pool["database"] == "shop") == 1
        resumed = time.monotonic()
        assert console.resume("shop") is True
        waiting.join(timeout=5)
        assert answers and answers[0][0] == "a" and answers[0][1] >= resumed
        assert console.resume("shop") is False  # not paused: nothing to do


def test_a_pause_held_up_by_an_open_transaction_gives_up_and_leaves_nothing_paused(
        bouncer: TemporaryPgBouncer) -> None:
    with psycopg.connect(bouncer.url("shop"), prepare_threshold=None) as open_transaction, \
            bouncer.admin() as console:
        open_transaction.execute("select 1")  # BEGIN was sent: the transaction holds a server
        started = time.monotonic()
        with pytest.raises(PgBouncerError, match="PAUSE shop did not finish within 1 s"):
            console.pause("shop", timeout=1)
        assert time.monotonic() - started < 3
        assert console.database("shop")["paused"] == 0
        open_transaction.commit()
        with _client(bouncer) as client:
            assert _cluster_of(client) == "a"


def test_repoint_moves_the_clients_to_another_server_and_keeps_the_files_owner(
        bouncer: TemporaryPgBouncer, clusters: tuple[TemporaryPostgres, TemporaryPostgres]) -> None:
    first, second = clusters
    ini = bouncer.config_file
    owner = (ini.stat().st_uid, ini.stat().st_gid, stat.S_IMODE(ini.stat().st_mode))
    with _client(bouncer) as client, bouncer.admin() as console:
        assert _cluster_of(client) == "a"
        console.pause("shop", timeout=5)
        done = console.repoint(ini, "shop", second.host, second.port)
        console.resume("shop")
        assert (done.old_host, done.old_port, done.port) == ("127.0.0.1", first.port, second.port)
        assert _cluster_of(client) == "b"  # the same client connection, now served by the other cluster
    assert (ini.stat().st_uid, ini.stat().st_gid, stat.S_IMODE(ini.stat().st_mode)) == owner
    assert "listen_port" in ini.read_text() and "pool_mode = transaction" in ini.read_text()


def test_md5_logins_need_the_password(tmp_path: Path, clusters: tuple[TemporaryPostgres, ...]) -> None:
    users = {"postgres": "pool-pass-1", "ops": "admin-pass-2"}
    with TemporaryPgBouncer(tmp_path, {"shop": Backend(clusters[0].host, clusters[0].port)}, users=users,
                            admin_user="ops", auth_type="md5") as md5:
        with md5.admin() as console:
            assert console.database("shop")["paused"] == 0
        wrong = PgBouncer(md5.host, md5.port, user="ops", password="wrong")
        with pytest.raises(PgBouncerError, match="cannot reach PgBouncer's admin console .* as ops"):
            wrong.show_pools()


def test_an_unreachable_pgbouncer_is_named_with_what_to_check(free_port: int) -> None:
    with pytest.raises(PgBouncerError, match=f"admin console at 127.0.0.1:{free_port} .* is it running"):
        PgBouncer("127.0.0.1", free_port, timeout=1).show_pools()


def test_the_sandbox_runs_as_an_ordinary_user_and_leaves_nothing_running(
        tmp_path: Path, clusters: tuple[TemporaryPostgres, ...]) -> None:
    bouncer = TemporaryPgBouncer(tmp_path, {"shop": Backend(clusters[0].host, clusters[0].port)}).start()
    pid = bouncer.pid
    assert pid is not None
    if os.geteuid() == 0:
        assert os.stat(f"/proc/{pid}").st_uid != 0
    bouncer.stop()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
