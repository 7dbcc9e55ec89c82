"""The PostgreSQL probe against a real cluster: readiness, connection slots, long
transactions, replication, and failures a person can act on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsplane.drivers.probes.postgres import connect_failure
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.health.models import State
from tests.probes.conftest import PG_PASSWORD, SECRETS
from tests.support.factories import postgres_target
from tests.support.http_servers import closed_port
from tests.support.probing import probe_once


async def test_a_healthy_primary_is_ok_with_its_figures(postgres_cluster: TemporaryPostgres) -> None:
    result = await probe_once(postgres_target(postgres_cluster.port, password="env:PG_PASSWORD"),
                              environ=SECRETS)
    assert result.state is State.OK, result.reason
    assert result.reason.startswith("PostgreSQL 1") and " primary ready in " in result.reason
    metrics = result.metrics
    assert metrics["in_recovery"] is False
    assert metrics["max_connections"] == 100
    assert metrics["connections"] >= 1  # type: ignore[operator]
    assert metrics["replicas"] == 0
    assert "replication_lag_s" not in metrics
    assert str(metrics["version"]).split(".")[0].isdigit()


async def test_the_probe_announces_itself_and_leaves_no_session(
    postgres_cluster: TemporaryPostgres,
) -> None:
    target = postgres_target(postgres_cluster.port, password="env:PG_PASSWORD")
    await probe_once(target, environ=SECRETS)
    left = postgres_cluster.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'opsplane-probe'")
    assert left == [(0,)]


async def test_the_connection_figure_counts_open_connections(
    postgres_cluster: TemporaryPostgres,
) -> None:
    target = postgres_target(postgres_cluster.port, password="env:PG_PASSWORD",
                             connections_warning=0.05)
    before = await probe_once(target, environ=SECRETS)
    held = [postgres_cluster.connect() for _ in range(5)]
    try:
        during = await probe_once(target, environ=SECRETS)
    finally:
        for conn in held:
            conn.close()
    used_before, used = before.metrics["connections"], during.metrics["connections"]
    assert used == used_before + 5  # type: ignore[operator]
    assert during.metrics["connections_ratio"] == pytest.approx(used / 100)  # type: ignore[operator]
    assert during.state is State.WARNING
    assert during.reason == f"{used}/100 connections (warning at 5%) — {target.address}"


async def test_a_long_open_transaction_is_found(postgres_cluster: TemporaryPostgres) -> None:
    target = postgres_target(postgres_cluster.port, password="env:PG_PASSWORD",
                             long_transaction_warning="1s", long_transaction_critical="1h")
    with postgres_cluster.connect(autocommit=False) as idle_in_transaction:
        idle_in_transaction.execute("SELECT 1")  # opens a transaction and leaves it open
        await asyncio.sleep(1.2)
        result = await probe_once(target, environ=SECRETS)
        idle_in_transaction.rollback()
    assert result.state is State.WARNING
    assert result.reason.startswith("a transaction open for 1.")
    assert result.reason.endswith(f" s (warning at 1s) — {target.address}")
    assert 1.2 <= result.metrics["longest_transaction_s"] < 5  # type: ignore[operator]


async def test_a_wrong_password_says_so_without_showing_it(
    postgres_cluster: TemporaryPostgres,
) -> None:
    target = postgres_target(postgres_cluster.port, password="env:WRONG")
    result = await probe_once(target, environ={"WRONG": "hunter2"})
    assert result.state is State.CRITICAL
    address = f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/postgres"
    assert result.reason == f'password authentication failed for user "postgres" — {address}'
    assert "hunter2" not in result.reason


async def test_a_missing_database_is_named(postgres_cluster: TemporaryPostgres) -> None:
    target = postgres_target(postgres_cluster.port, database="orders",
                             password="env:PG_PASSWORD")
    result = await probe_once(target, environ=SECRETS)
    address = f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/orders"
    assert (result.state, result.reason) == (State.CRITICAL,
                                             f'database "orders" does not exist — {address}')


async def test_nothing_listening_refuses_connections() -> None:
    port = closed_port()
    result = await probe_once(postgres_target(port))
    assert (result.state, result.reason) == (
        State.CRITICAL, f"refuses connections — postgresql://postgres@127.0.0.1:{port}/postgres")


def test_connection_errors_never_show_the_password() -> None:
    message = ('connection failed: connection to server at "10.0.0.5", port 5432 failed: '
               'FATAL:  something odd about s3cr3t')
    assert connect_failure(message, "s3cr3t", 5) == "something odd about ***"
    assert connect_failure("connection failed: timeout expired", None, 5) == \
        "no answer within 5 s"


# --- replication -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[TemporaryPostgres, TemporaryPostgres]]:
    """A primary with one streaming replica, both our own."""
    base: Path = tmp_path_factory.mktemp("replication")
    with TemporaryPostgres(base / "primary", password=PG_PASSWORD) as primary:
        primary.execute("CREATE TABLE ticks (at timestamptz DEFAULT now())")
        with TemporaryPostgres.replica_of(primary, base / "replica") as replica:
            _wait_for_replica(primary)
            yield primary, replica


async def test_a_primary_counts_its_replicas(
    replicated: tuple[TemporaryPostgres, TemporaryPostgres],
) -> None:
    primary, _ = replicated
    result = await probe_once(postgres_target(primary.port, password="env:PG_PASSWORD"),
                              environ=SECRETS)
    assert result.state is State.OK
    assert result.metrics["replicas"] == 1


async def test_a_caught_up_replica_has_no_lag(
    replicated: tuple[TemporaryPostgres, TemporaryPostgres],
) -> None:
    primary, replica = replicated
    _catch_up(primary, replica)
    result = await probe_once(postgres_target(replica.port, password="env:PG_PASSWORD"),
                              environ=SECRETS)
    assert result.state is State.OK, result.reason
    assert " replica ready in " in result.reason and "replication lag 0.0 s" in result.reason
    assert result.metrics["in_recovery"] is True
    assert result.metrics["replication_lag_s"] == 0
    assert "replicas" not in result.metrics


async def test_a_replica_that_stopped_replaying_lags(
    replicated: tuple[TemporaryPostgres, TemporaryPostgres],
) -> None:
    primary, replica = replicated
    _catch_up(primary, replica)
    replica.execute("SELECT pg_wal_replay_pause()")
    try:
        primary.execute("INSERT INTO ticks DEFAULT VALUES")
        _wait(lambda: replica.execute(
            "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")[0][0])
        await asyncio.sleep(1.2)
        target = postgres_target(replica.port, password="env:PG_PASSWORD",
                                 replication_lag_warning="1s")
        result = await probe_once(target, environ=SECRETS)
    finally:
        replica.execute("SELECT pg_wal_replay_resume()")
    assert result.state is State.WARNING
    assert result.reason.startswith("replication lag 1.")
    assert result.reason.endswith(f" s (warning at 1s) — postgresql://postgres@127.0.0.1:{replica.port}/postgres")


def _wait_for_replica(primary: TemporaryPostgres) -> None:
    _wait(lambda: primary.execute(
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0] == 1)


def _catch_up(primary: TemporaryPostgres, replica: TemporaryPostgres) -> None:
    """Commit on the primary and wait until the replica has replayed it."""
    primary.execute("INSERT INTO ticks DEFAULT VALUES")
    [(lsn,)] = primary.execute("SELECT pg_current_wal_lsn()::text")
    _wait(lambda: replica.execute(
        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0])


def _wait(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the replica did not get there in time")
        time.sleep(0.02)


def test_the_temporary_cluster_refuses_a_password_over_tcp_when_wrong(
    postgres_cluster: TemporaryPostgres,
) -> None:
    # The fixture's claim that every probe authenticates rests on this.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_cluster.dsn.replace(PG_PASSWORD, "nope"), connect_timeout=5)
