"""The db report and its actions against a real PostgreSQL with pg_stat_statements loaded: a
table bloated on purpose (rows inserted, most deleted, autovacuum off for it), unused and
duplicate indexes, a lock held by one session that another waits for, and a session left idle
in a transaction each show up; terminate-idle ends that session and only it; VACUUM takes the
dead rows away; both are recorded as events. A server without the extension says so."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from opsplane.config.loader import loads
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.events.tables import Event
from opsplane.maintenance import flows
from opsplane.maintenance.thresholds import Thresholds
from opsplane.store import Store
from tests.support.cli import Opsplane
from tests.support.passwords import PG_PASSWORD
from tests.support.polling import wait_for

# the checkout under test, also for the commands run as subprocesses
ENV = {"PG_PASSWORD": PG_PASSWORD, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPostgres]:
    """A cluster with pg_stat_statements preloaded and created in its `shop` database."""
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
    with TemporaryPostgres(tmp_path_factory.mktemp("pgcare"), password=PG_PASSWORD, settings=settings) as pg:
        pg.execute("CREATE DATABASE shop")
        pg.execute("CREATE EXTENSION pg_stat_statements", database="shop")
        yield pg


def inventory_text(pg: TemporaryPostgres, name: str = "main") -> str:
    return f"""
platform: {{name: shop}}
databases:
  {name}:
    port: {pg.port}
    database: shop
    password: env:PG_PASSWORD
"""


def inventory(pg: TemporaryPostgres) -> Any:
    return loads(inventory_text(pg))


@pytest.fixture(scope="module")
def bloated(cluster: TemporaryPostgres) -> str:
    """`public.orders`: 40,000 rows of 200 bytes, analyzed, then 36,000 deleted without a vacuum."""
    with cluster.connect("shop") as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int, note text) "
                     "WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO orders SELECT i, i % 100, repeat(md5(i::text), 6) "
                     "FROM generate_series(1, 40000) i")
        conn.execute("CREATE INDEX orders_customer ON orders (customer)")
        conn.execute("CREATE INDEX orders_customer_again ON orders (customer)")
        conn.execute("CREATE INDEX orders_note ON orders (note)")
        conn.execute("CREATE INDEX orders_first_word ON orders (left(note, 4), customer)")
    with cluster.connect("shop") as conn:  # the inserts counted (a session's counts land when it ends)
        conn.execute("ANALYZE orders")
        conn.execute("DELETE FROM orders WHERE id > 4000")
        conn.execute("SELECT pg_stat_force_next_flush()")
    return "public.orders"


def _report(cluster: TemporaryPostgres, limits: Thresholds = Thresholds()) -> Any:
    return flows.report_one(inventory(cluster), "main", ENV, limits)


def _subjects(report: Any, severity: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in report.findings:
        if f.severity == severity:
            found.setdefault(f.subject, []).append(f.what)
    return found


def test_the_bloated_table_its_indexes_and_slow_queries_show(cluster: TemporaryPostgres,
                                                            bloated: str) -> None:
    with cluster.connect("shop") as conn:
        conn.execute("SELECT pg_sleep(0.6)")  # a slow statement, over the 500 ms warning
    report = _report(cluster)
    table = next(t for t in report.body["tables"] if t["table"] == bloated)
    assert (table["live"], table["dead"]) == (4000, 36000)
    assert table["vacuum_age_s"] is None and table["autovacuum"] is False
    assert 0.8 < table["bloat_ratio"] < 0.95  # 9 rows in 10 are gone, the pages are all still there
    critical = _subjects(report, "critical")
    assert any("36000 dead tuples, 90% of its rows (autovacuum is off for it)" in w
               for w in critical[f"table {bloated}"])
    assert any("is bloat (estimate)" in w for w in critical[f"table {bloated}"])
    warnings = _subjects(report, "warning")
    assert any(w.startswith("never vacuumed") for w in warnings[f"table {bloated}"])
    unused = {i["index"] for i in report.body["indexes"]["unused"]}
    assert {"public.orders_customer", "public.orders_customer_again", "public.orders_note"} <= unused
    assert "public.orders_pkey" not in unused  # a primary key is never "unused"
    columns = {i["index"]: i["columns"] for i in report.body["indexes"]["unused"]}
    assert columns["public.orders_first_word"] == ["\"left\"(note, 4)", "customer"]
    assert columns["public.orders_customer"] == ["customer"]
    [group] = report.body["indexes"]["duplicates"]
    assert [i["index"] for i in group] == ["public.orders_customer", "public.orders_customer_again"]
    assert "duplicates public.orders_customer" in warnings["index public.orders_customer_again"][0]
    assert "index public.orders_note" in warnings  # over 1 MB and never scanned
    statements = report.body["statements"]
    assert statements["state"] == "loaded" and statements["note"] is None
    assert any("pg_sleep" in r["query"] for r in statements["by_mean"])
    assert any("pg_sleep" in w for s, ws in warnings.items() if s.startswith("statement") for w in ws)
    assert report.outcome == "critical"
    assert "| public.orders | 4000 | 36000 | 90% | never |" in report.markdown


def test_a_blocking_lock_shows_as_a_tree_and_an_idle_transaction_with_its_age(
        cluster: TemporaryPostgres, bloated: str) -> None:
    holder = cluster.connect("shop", autocommit=False)
    holder.execute("UPDATE orders SET note = 'held' WHERE id = 1")  # holds the row lock, then idles
    waiting: list[BaseException] = []

    def wait_for_lock() -> None:
        with cluster.connect("shop", autocommit=False) as waiter:
            try:
                waiter.execute("UPDATE orders SET note = 'waits' WHERE id = 1")
                waiter.rollback()
            except psycopg.Error as exc:  # pragma: no cover - shown by the assertion below
                waiting.append(exc)

    thread = threading.Thread(target=wait_for_lock)
    thread.start()
    try:
        holder_pid = holder.info.backend_pid
        wait_for(lambda: _report(cluster).body["locks"], timeout=10)
        time.sleep(1.1)  # the holder idles in its transaction, and the waiter waits, past 1 s
        report = _report(cluster, Thresholds(lock_wait_warning=1.0, idle_in_transaction_warning=1.0))
        [root] = report.body["locks"]
        assert root["pid"] == holder_pid and root["state"] == "idle in transaction"
        [blocked] = root["blocks"]
        assert "waits" in blocked["query"] and blocked["waiting_s"] >= 1.0
        [idle] = report.body["idle_in_transaction"]
        assert idle["pid"] == holder_pid and idle["idle_s"] >= 1.0
        warnings = _subjects(report, "warning")
        assert "blocks 1 sessions" in warnings[f"session {holder_pid}"][0]
        assert any("idle in a transaction for" in w for w in warnings[f"session {holder_pid}"])
        assert f"- pid {holder_pid} (idle in transaction)" in report.markdown
        # with the manual's levels (idle over 5 minutes critical), a second is no finding yet
        assert f"session {holder_pid}" not in _subjects(_report(cluster), "warning")
    finally:
        holder.rollback()
        holder.close()
        thread.join(10)
    assert not waiting


def test_terminate_idle_ends_the_idle_session_only_and_records_it(
        cluster: TemporaryPostgres, tmp_path: Path) -> None:
    idle = cluster.connect("shop", autocommit=False)
    idle.execute("SELECT 1")  # a transaction opened, then nothing
    busy = cluster.connect("shop", autocommit=False)  # a transaction at work all along
    working = threading.Thread(target=lambda: _quietly(busy, "SELECT pg_sleep(60)"))
    working.start()
    cli = Opsplane(tmp_path, _yaml(inventory_text(cluster)), ENV)
    try:
        time.sleep(1.2)
        dry = cli.json("db", "terminate-idle", "main", "--older-than", "1s", "--dry-run")
        assert [s["pid"] for s in dry["sessions"]] == [idle.info.backend_pid]
        assert dry["terminated"] == []
        assert not idle.closed
        done = cli.json("db", "terminate-idle", "main", "--older-than", "1s", "--yes")
        assert done["terminated"] == [idle.info.backend_pid]
        with pytest.raises(psycopg.OperationalError):
            idle.execute("SELECT 1")
        assert working.is_alive()  # the working session goes on
    finally:
        busy.cancel()
        working.join(10)
        for conn in (idle, busy):
            conn.close()
    store = Store.open(cli.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            [event] = session.scalars(select(Event).where(Event.kind == "db.sessions_terminated")).all()
            assert event.target == "database:main" and event.actor == "cli:ana"
            assert event.details["terminated"] == [done["terminated"][0]]
    finally:
        store.close()


def test_vacuum_from_the_command_line_removes_the_dead_rows_and_is_recorded(
        cluster: TemporaryPostgres, bloated: str, tmp_path: Path) -> None:
    cli = Opsplane(tmp_path, _yaml(inventory_text(cluster)), ENV)
    refused = cli("db", "vacuum", "main", "--table", "nosuch", "--yes", code=3)
    assert "no table 'nosuch' in shop" in refused.stderr
    ran = cli("db", "vacuum", "main", "--table", "orders", "--analyze", "--yes")
    assert 'VACUUM (ANALYZE) "public"."orders" done' in ran.stdout
    wait_for(lambda: next(t for t in _report(cluster).body["tables"] if t["table"] == bloated)["dead"] == 0,
             timeout=10)
    table = next(t for t in _report(cluster).body["tables"] if t["table"] == bloated)
    assert table["vacuum_age_s"] is not None and table["vacuum_age_s"] < 60
    store = Store.open(cli.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            events = session.scalars(select(Event).where(Event.kind == "db.vacuum")).all()
            assert len(events) == 1, [(e.outcome, e.details) for e in events]
            [event] = events
            assert (event.outcome, event.details["table"], event.details["analyze"]) == ("ok", "orders", True)
    finally:
        store.close()


def test_an_operator_is_asked_first_and_a_no_changes_nothing(cluster: TemporaryPostgres,
                                                            tmp_path: Path) -> None:
    cli = Opsplane(tmp_path, _yaml(inventory_text(cluster)), {**ENV, "OPSPLANE_LOCAL_ROLE": "viewer"})
    refused = cli("db", "analyze", "main", "--yes", code=3)
    assert "needs the operator role" in refused.stderr
    cli.env["OPSPLANE_LOCAL_ROLE"] = "operator"
    ran = subprocess_input(cli, "n\n", "db", "analyze", "main")
    assert ran.returncode == 3 and "nothing was changed" in ran.stderr


def subprocess_input(cli: Opsplane, text: str, *args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", *args], input=text,
                          capture_output=True, text=True, env=cli.env, cwd=cli.cwd, timeout=60)


def test_the_report_says_when_pg_stat_statements_is_not_loaded(
        postgres_cluster: TemporaryPostgres, tmp_path: Path) -> None:
    if not postgres_cluster.execute("SELECT 1 FROM pg_database WHERE datname = 'shop'"):
        postgres_cluster.execute("CREATE DATABASE shop")
    cli = Opsplane(tmp_path, _yaml(inventory_text(postgres_cluster)), ENV)
    report = cli("db", "report", "main", "--json", code=None)
    body = json.loads(report.stdout)
    assert body["statements"]["state"] == "not_preloaded"
    note = body["statements"]["note"]
    assert "pg_stat_statements is not loaded: add it to shared_preload_libraries" in note
    assert body["statements"]["by_total"] == []
    text = cli("db", "report", "main", "--markdown", code=None).stdout
    assert "pg_stat_statements is not loaded" in text


def test_an_unreachable_database_is_a_reason_not_a_traceback(tmp_path: Path, free_port: int) -> None:
    text = f"platform: {{name: shop}}\ndatabases:\n  gone: {{port: {free_port}}}\n"
    cli = Opsplane(tmp_path, _yaml(text), ENV)
    ran = cli("db", "report", "gone", code=2)
    assert (f"cannot reach postgresql://postgres@127.0.0.1:{free_port}/postgres: refuses connections"
            in ran.stderr)
    wrong = cli("db", "report", "gon", code=3)
    assert "no database 'gon' in the inventory (did you mean 'gone'?)" in wrong.stderr


def test_the_weekly_job_reports_every_database_in_one_report(cluster: TemporaryPostgres,
                                                             free_port: int) -> None:
    text = inventory_text(cluster) + f"  gone: {{port: {free_port}}}\n"
    report = flows.report_all(loads(text), ENV)
    assert report is not None
    assert set(report.body["databases"]) == {"main"}
    assert "refuses connections" in report.body["failures"]["gone"]
    assert any(f.subject == "gone" and f.severity == "critical" for f in report.findings)
    assert all(f.subject.startswith(("main: ", "gone")) for f in report.findings)
    assert report.outcome == "critical" and not report.failed


def _quietly(conn: psycopg.Connection[Any], query: str) -> None:
    try:
        conn.execute(query)
    except psycopg.Error:
        pass  # cancelled at the end of the test


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)



def test_the_db_report_job_runs_from_the_registry_and_is_kept(cluster: TemporaryPostgres,
                                                              tmp_path: Path) -> None:
    from opsplane.clock import ManualClock
    from opsplane.reports import jobs, service

    job = jobs.get("db-report")
    assert (job.cron, jobs.get("db-pools").cron) == ("0 2 * * 0", "0 10 1 * *")
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    try:
        env = jobs.JobEnv(inventory(cluster), tmp_path, store, ManualClock(datetime(2026, 12, 6, tzinfo=UTC)),
                          environ=ENV)
        row = jobs.run_and_save(job, env, trigger="cli", requested_by="cli:ana")
        with store.session() as session:
            kept = service.as_dict(service.get(session, row.id), full=True)
        assert kept["job"] == "db-report" and kept["subject"] == "main"
        assert "main" in kept["body"]["databases"] and kept["markdown"].startswith("# Database main")
        # no PgBouncer check in this inventory: the pools job has nothing to look at
        assert jobs.run_and_save(jobs.get("db-pools"), env, trigger="cli", requested_by="cli:ana") is None
    finally:
        store.close()
