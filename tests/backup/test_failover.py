"""`opsplane failover` against the real thing: a PostgreSQL primary, its streaming replica and a
PgBouncer in front of the primary, with a writer inserting orders through PgBouncer the whole
time. After the failover the replica is the primary, the old one is fenced, PgBouncer points at
the new one, the writer goes on, and every order it saw committed is on the new primary."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from opsplane.backup import service
from opsplane.backup.failover import FailoverRefused, failover
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.events.tables import Event
from opsplane.store import Store


@dataclass
class Pair:
    primary: TemporaryPostgres
    replica: TemporaryPostgres
    bouncer: TemporaryPgBouncer


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A primary with an `orders` table, its streaming replica, and PgBouncer's `shop` in front of
    the primary (transaction pooling)."""
    primary = TemporaryPostgres(tmp_path / "primary").start()
    replica = None
    try:
        primary.execute("create table orders (id integer primary key, placed timestamptz default now())")
        replica = TemporaryPostgres.replica_of(primary, tmp_path / "replica").start()
        with TemporaryPgBouncer(tmp_path / "bouncer", {"shop": Backend(primary.host, primary.port)},
                                settings={"query_wait_timeout": "30"}) as bouncer:
            yield Pair(primary, replica, bouncer)
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def inventory(pair: Pair, *, fence: str = "how: stop", standby_port: int | None = None) -> Any:
    if fence == "how: stop":
        fence = f"{{how: stop, data_dir: {pair.primary.data_dir}}}"
    return loads(textwrap.dedent(f"""\
        version: 1
        platform: {{name: shop}}
        databases:
          shop-db: {{host: 127.0.0.1, port: {pair.primary.port}}}
        backup:
          failover:
            shop-db:
              standby: {{host: 127.0.0.1, port: {standby_port or pair.replica.port}}}
              pgbouncer: {{host: 127.0.0.1, port: {pair.bouncer.port},
                          config_file: {pair.bouncer.config_file}, database: shop}}
              fence: {fence}
        """))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Writer:
    """Inserts orders through PgBouncer, one transaction each, as fast as it can; remembers each
    it saw committed and each failure, with the time."""

    url: str
    committed: list[tuple[int, float]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        number = 0
        while not self.stopping.is_set():
            number += 1
            try:
                if conn is None:
                    conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None,
                                           connect_timeout=2)
                conn.execute("insert into orders (id) values (%s)", (number,))
                self.committed.append((number, time.monotonic()))
            except psycopg.Error as exc:
                self.failures.append((time.monotonic(), str(exc).strip()))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
            time.sleep(0.002)
        if conn is not None:
            conn.close()


def in_recovery(cluster: TemporaryPostgres) -> bool:
    return bool(cluster.execute("select pg_is_in_recovery()")[0][0])


@pytest.mark.parametrize("fence", ["how: stop", "{how: read-only}"])
def test_failover_under_writes_loses_no_order_and_keeps_writes_going(
        pair: Pair, store: Store, fence: str, capsys: pytest.CaptureFixture[str]) -> None:
    writer = Writer(pair.bouncer.url("shop"))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        began = time.monotonic()
        report = failover(store, inventory(pair, fence=fence), "shop-db", clock=SystemClock(),
                          actor="cli:test", environ={})
        ended = time.monotonic()
        time.sleep(0.5)
    finally:
        writer.stopping.set()
        thread.join(timeout=10)
    assert report.ok, report.as_dict()
    assert report.new_primary == f"127.0.0.1:{pair.replica.port}"
    assert not in_recovery(pair.replica)
    if fence == "how: stop":
        assert not pair.primary.running
    else:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pair.primary.execute("insert into orders (id) values (-1)")
    with pair.bouncer.admin() as console:
        entry = console.database("shop")
    assert (entry["port"], entry["paused"]) == (pair.replica.port, 0)

    before = [number for number, at in writer.committed if at < began]
    during = [failure for failure in writer.failures if began <= failure[0] <= ended + 1]
    after = [number for number, at in writer.committed if at > ended]
    on_new = {row[0] for row in pair.replica.execute("select id from orders")}
    lost = [number for number, _ in writer.committed if number not in on_new]
    with capsys.disabled():
        steps = ", ".join(f"{step.name} {step.seconds * 1000:.0f} ms" for step in report.steps)
        print(f"\nfailover (fence {fence}): {report.total_seconds:.3f} s [{steps}]; orders committed "
              f"{len(writer.committed)} ({len(before)} before, {len(after)} after), failed inserts during "
              f"the switch {len(during)}, lost {len(lost)}")
    assert before and after, "the writer must have written before and after the failover"
    assert lost == []
    assert during == [], during  # PgBouncer held the inserts while paused: none failed
    assert report.total_seconds < 15 and report.met_target
    assert [step.name for step in report.steps] == ["checks", "pause", "fence", "catch-up", "promote",
                                                     "repoint", "resume"]

    with store.session() as session:
        (row,) = service.restores(session, purpose="failover")
        kept = service.restore_as_dict(row)
        kinds = [event.kind for event in session.query(Event).order_by(Event.id)]
    assert kept["state"] == "succeeded" and kept["policy"] == "shop-db"
    assert kept["report"]["new_primary"] == report.new_primary
    assert kept["report"]["lag_at_start"]["replay_bytes"] is not None
    assert [step["step"] for step in kept["report"]["steps"]][-1] == "resume"
    assert kinds == ["restore.started", "restore.succeeded", "database.promoted"]


def test_a_dry_run_checks_and_plans_and_changes_nothing(pair: Pair) -> None:
    before = pair.bouncer.config_file.read_text()
    report = failover(None, inventory(pair), "shop-db", clock=SystemClock(), actor="cli:test", environ={},
                      dry_run=True)
    assert report.ok and report.dry_run and report.steps == ()
    assert report.checks["standby"]["in_recovery"] and report.checks["standby"]["streaming"]
    assert report.checks["pgbouncer"]["points_at"] == f"127.0.0.1:{pair.primary.port}"
    assert any(step.startswith("PAUSE shop") for step in report.plan)
    assert in_recovery(pair.replica) and pair.primary.running
    pair.primary.execute("insert into orders (id) values (1)")
    assert pair.bouncer.config_file.read_text() == before


def test_an_unreachable_standby_is_refused_and_nothing_changes(pair: Pair, store: Store) -> None:
    nowhere = free_port()
    with pytest.raises(FailoverRefused) as refused:
        failover(store, inventory(pair, standby_port=nowhere), "shop-db", clock=SystemClock(),
                 actor="cli:test", environ={})
    assert refused.value.exit_code == 3
    assert f"cannot reach PostgreSQL at 127.0.0.1:{nowhere}" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    with pair.bouncer.admin() as console:
        entry = console.database("shop")
    assert (entry["port"], entry["paused"]) == (pair.primary.port, 0)
    pair.primary.execute("insert into orders (id) values (1)")
    with store.session() as session:
        assert list(service.restores(session, purpose="failover")) == []


def test_a_failed_step_is_recorded_and_pgbouncer_is_resumed(pair: Pair, store: Store) -> None:
    # A transaction left open through PgBouncer holds up PAUSE, which gives up after 5 s.
    with psycopg.connect(pair.bouncer.url("shop"), prepare_threshold=None) as open_transaction:
        open_transaction.execute("select 1")
        report = failover(store, inventory(pair), "shop-db", clock=SystemClock(), actor="cli:test",
                          environ={})
    assert not report.ok and report.failed_step == "pause"
    assert "did not finish within 5 s" in (report.error or "")
    assert [(step.name, step.ok) for step in report.steps] == [("checks", True), ("pause", False),
                                                               ("resume", True)]
    assert in_recovery(pair.replica) and pair.primary.running
    with pair.bouncer.admin() as console:
        assert console.database("shop")["paused"] == 0
    with store.session() as session:
        (row,) = service.restores(session, purpose="failover")
        assert (row.state, row.report["failed_step"]) == ("failed", "pause")


def test_the_command_asks_for_the_name_and_prints_the_plan(pair: Pair, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from opsplane.backup.failover_cli import NotConfirmed, register

    config = tmp_path / "opsplane.yaml"
    config.write_text(inventory_text(pair))
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config": config}

    register(app)
    monkeypatch.setenv("OPSPLANE_DATABASE_URL", f"sqlite:///{tmp_path}/opsplane.db")
    runner = CliRunner()
    dry = runner.invoke(app, ["failover", "shop-db", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "PAUSE shop" in dry.output and "standby: in recovery, streaming" in dry.output
    wrong = runner.invoke(app, ["failover", "shop-db"], input="orders-db\n")
    assert isinstance(wrong.exception, NotConfirmed) and wrong.exception.exit_code == 3
    assert in_recovery(pair.replica)
    done = runner.invoke(app, ["failover", "shop-db", "--json"], input="shop-db\n")
    assert done.exit_code == 0, done.output
    assert not in_recovery(pair.replica)
    assert '"new_primary": "127.0.0.1:' in done.output


def inventory_text(pair: Pair) -> str:
    return textwrap.dedent(f"""\
        version: 1
        platform: {{name: shop}}
        databases:
          shop-db: {{host: 127.0.0.1, port: {pair.primary.port}}}
        backup:
          failover:
            shop-db:
              standby: {{host: 127.0.0.1, port: {pair.replica.port}}}
              pgbouncer:
                {{port: {pair.bouncer.port}, config_file: {pair.bouncer.config_file}, database: shop}}
              fence: {{how: read-only}}
        """)


def test_without_pgbouncer_the_report_says_what_to_change_in_the_inventory(pair: Pair, store: Store) -> None:
    inv = loads(textwrap.dedent(f"""\
        version: 1
        platform: {{name: shop}}
        databases:
          shop-db: {{port: {pair.primary.port}}}
        backup:
          failover:
            shop-db: {{standby: {{host: 127.0.0.1, port: {pair.replica.port}}}, catch_up: 2s, target: 5s}}
        """))
    report = failover(store, inv, "shop-db", clock=SystemClock(), actor="cli:test", environ={})
    assert report.ok and report.total_seconds < 5
    assert [step.name for step in report.steps] == ["checks", "fence", "catch-up", "promote"]
    assert report.inventory_change[0] == (f"databases.shop-db: host 127.0.0.1, port {pair.replica.port} "
                                          f"(it was 127.0.0.1:{pair.primary.port})")
    with store.session() as session:
        (row,) = service.restores(session, purpose="failover")
        assert row.report["inventory_change"] == list(report.inventory_change)


def test_a_primary_that_is_down_is_failed_over_with_a_warning(pair: Pair, store: Store) -> None:
    pair.primary.execute("insert into orders (id) values (1)")
    time.sleep(0.3)  # streamed to the replica
    pair.primary.stop()
    report = failover(store, inventory(pair, fence="{how: read-only}"), "shop-db", clock=SystemClock(),
                      actor="cli:test", environ={})
    assert report.ok, report.as_dict()
    assert any("it cannot be fenced over the connection" in warning for warning in report.warnings)
    details = {step.name: step.detail for step in report.steps}
    assert details["fence"].startswith("not fenced: the old primary")
    assert details["catch-up"].startswith("skipped")
    assert not in_recovery(pair.replica)
    assert pair.replica.execute("select id from orders") == [(1,)]
    with psycopg.connect(pair.bouncer.url("shop"), autocommit=True, prepare_threshold=None) as client:
        client.execute("insert into orders (id) values (2)")
