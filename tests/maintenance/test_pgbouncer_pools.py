"""The pgbouncer check and `opsplane db pools` against a real PgBouncer (pool of 2) in front of a
real PostgreSQL, with 8 clients at once running pg_sleep through it: the check sees clients
waiting and turns WARNING with its figures, and the advice says to raise the pool, with room
left under PostgreSQL's max_connections. Without the crowd the pool fits and the check is OK."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from opsplane.config.loader import loads
from opsplane.drivers.probes import build_probe
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.health.models import State
from opsplane.health.targets import check_targets
from opsplane.maintenance import flows
from tests.support.cli import Opsplane
from tests.support.passwords import PG_PASSWORD
from tests.support.polling import wait_for

ADMIN_PASSWORD = "bouncer-admin-secret"
ENV = {"PG_PASSWORD": PG_PASSWORD, "BOUNCER_PASSWORD": ADMIN_PASSWORD,
       "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
CLIENTS = 8
# a pool of 2, and SHOW STATS refreshed every second (60 s by default)
SETTINGS = {"default_pool_size": "2", "max_client_conn": "100", "stats_period": "1"}
Servers = tuple[TemporaryPostgres, TemporaryPgBouncer]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("pools")
    with TemporaryPostgres(base / "pg", password=PG_PASSWORD) as pg:
        pg.execute("CREATE DATABASE shop")
        bouncer = TemporaryPgBouncer(base / "bouncer", {"shop": Backend(pg.host, pg.port, "shop")},
                                     users={"postgres": PG_PASSWORD, "pgbouncer": ADMIN_PASSWORD},
                                     auth_type="md5", settings=SETTINGS)
        with bouncer:
            yield pg, bouncer


def inventory_text(pg: TemporaryPostgres, bouncer: TemporaryPgBouncer) -> str:
    return f"""
platform: {{name: shop}}
databases:
  main:
    port: {pg.port}
    database: shop
    password: env:PG_PASSWORD
    checks:
      - {{type: postgres}}
      - {{type: pgbouncer, port: {bouncer.port}, admin_user: pgbouncer, password: env:BOUNCER_PASSWORD,
         database: shop}}
"""


class Crowd:
    """`clients` threads, each running pg_sleep(0.3) through PgBouncer over and over until stopped."""

    def __init__(self, bouncer: TemporaryPgBouncer, clients: int = CLIENTS) -> None:
        self.bouncer, self.stop = bouncer, threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]
        self.connected = threading.Semaphore(0)  # one release per client once it is connected

    def _client(self) -> None:
        try:
            with psycopg.connect(host=self.bouncer.host, port=self.bouncer.port, dbname="shop",
                                 user="postgres", password=PG_PASSWORD, autocommit=True,
                                 prepare_threshold=None) as conn:
                self.connected.release()
                while not self.stop.is_set():
                    conn.execute("SELECT pg_sleep(0.3)")
        except psycopg.Error as exc:
            self.errors.append(exc)

    def __enter__(self) -> Crowd:
        for thread in self.threads:
            thread.start()
        for _ in self.threads:  # the load is there before anything watches it, however busy the machine
            assert self.connected.acquire(timeout=30), self.errors
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        assert not self.errors


def _probe(pg: TemporaryPostgres, bouncer: TemporaryPgBouncer) -> Any:
    [target] = [t for t in check_targets(loads(inventory_text(pg, bouncer))) if t.type == "pgbouncer"]
    return build_probe(target, environ=ENV)


def test_the_check_sees_clients_waiting_for_a_small_pool(
        servers: Servers) -> None:
    pg, bouncer = servers
    probe = _probe(pg, bouncer)
    quiet = asyncio.run(probe.probe())
    assert quiet.state is State.OK, quiet.reason
    assert quiet.metrics["clients_waiting"] == 0 and quiet.metrics["pool_size"] == 2
    assert probe.address == f"pgbouncer://pgbouncer@127.0.0.1:{bouncer.port}"
    with Crowd(bouncer):
        def crowded() -> Any:
            r = asyncio.run(probe.probe())
            return r.metrics["clients_waiting"] >= 5 and r.metrics["servers_active"] == 2 and r

        result = wait_for(crowded, "five clients waiting for both server connections", timeout=15)
        assert result.state is State.WARNING, result.reason
        assert f"{result.metrics['clients_waiting']} clients waiting (warning at 5)" in result.reason
        assert result.metrics["pool_use"] == 1.0
        assert "pool shop/postgres 2/2 in use (warning at 90%)" in result.reason
        assert result.metrics["max_wait_s"] is not None
        # 6 clients queue behind 2 running 0.3 s statements: each waits about 0.9 s
        wait_for(lambda: (asyncio.run(probe.probe()).metrics["avg_wait_ms"] or 0) > 300, "a wait counted", 10)


def test_the_pool_advice_says_to_raise_the_pool_with_room_in_postgresql(
        servers: Servers) -> None:
    pg, bouncer = servers
    inventory = loads(inventory_text(pg, bouncer))
    with Crowd(bouncer):
        with bouncer.admin() as console:
            wait_for(lambda: sum(p["cl_waiting"] for p in console.show_pools()) > 0, "clients waiting", 15)
        report = flows.pools_report(inventory, ENV, seconds=2.0, interval=0.25)
    assert report is not None and report.outcome == "warning"
    [look] = report.body["bouncers"]
    [pool] = look["pools"]
    assert pool["pool"] == "shop/postgres" and pool["pool_size"] == 2
    assert pool["peak_waiting"] >= 4 and pool["avg_wait_ms"] > 50
    assert look["max_connections"] == 100 and look["default_pool_size"] == 2
    [advice] = look["advice"]
    assert advice.startswith(f"shop/postgres: clients waited on average {pool['avg_wait_ms']:.0f} ms and "
                             f"{pool['peak_waiting']} waited at peak: raise the pool size from 2 to 4")
    assert "PostgreSQL's max_connections 100 leaves room" in advice
    assert [f.subject for f in report.findings] == ["pool shop/postgres"]


def test_a_pool_that_keeps_up_fits_and_the_command_says_so(
        servers: Servers, tmp_path: Path) -> None:
    pg, bouncer = servers
    cli = Opsplane(tmp_path, yaml.safe_load(inventory_text(pg, bouncer)), ENV)
    quiet = json.loads(cli("db", "pools", "--seconds", "0", "--json").stdout)
    assert quiet["outcome"] == "ok"
    # a pool that ran nothing, or none yet when this test is the first to use this PgBouncer
    assert "nothing to judge" in quiet["bouncers"][0]["advice"][0]
    with Crowd(bouncer, clients=1):
        ran = cli("db", "pools", "main", "--seconds", "2.5")
    assert "shop/postgres: clients waited on average" in ran.stdout
    assert "at most 0 waiting and 1 of 2 server connections active: the pool size fits" in ran.stdout


def test_an_unreachable_pgbouncer_is_a_reason(tmp_path: Path, free_port: int) -> None:
    text = (f"platform: {{name: shop}}\ndatabases:\n  main:\n    port: {free_port}\n"
            f"    checks: [{{type: pgbouncer, port: {free_port}}}]\n")
    report = flows.pools_report(loads(text), ENV, seconds=0)
    assert report is not None and report.failed
    assert f"cannot reach PgBouncer's admin console at 127.0.0.1:{free_port}" in report.summary
