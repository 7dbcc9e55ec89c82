"""The sandboxes themselves: they start real servers, stop them completely, and say what is
missing when they cannot."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.health.models import State
from tests.support.factories import postgres_target, redis_target
from tests.support.probing import probe_once


def _stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_stopped_postgres_is_gone_and_refuses_connections(tmp_path: Path) -> None:
    cluster = TemporaryPostgres(tmp_path).start()
    pid, target = cluster.pid, postgres_target(cluster.port)
    assert pid is not None and cluster.running
    assert cluster.port != 5432
    up = await probe_once(target)
    cluster.stop()
    cluster.stop()  # stopping twice is harmless
    down = await probe_once(target)
    assert up.state is State.OK, up.reason
    assert _stopped(pid) and not cluster.running and cluster.pid is None
    assert (down.state, down.reason) == (State.CRITICAL, f"refuses connections — {target.address}")


def test_postgres_url_and_dsn_point_at_the_cluster(tmp_path: Path) -> None:
    with TemporaryPostgres(tmp_path, password="p@ss word") as cluster:
        assert cluster.url("app") == f"postgresql://postgres:p%40ss%20word@127.0.0.1:{cluster.port}/app"
        assert f"port={cluster.port}" in cluster.dsn and "password='p@ss word'" in cluster.dsn
        assert cluster.execute("SELECT current_setting('listen_addresses')") == [("127.0.0.1",)]
        assert cluster.execute("CREATE TABLE t (x int)") == []


def test_postgres_without_its_binaries_names_them(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="initdb, pg_ctl, pg_basebackup"):
        TemporaryPostgres(tmp_path / "pg", bindir=tmp_path).start()


async def test_a_stopped_redis_is_gone_and_refuses_connections(tmp_path: Path) -> None:
    server = TemporaryRedis(tmp_path, maxmemory=64 * 1024 * 1024).start()
    pid, target = server.pid, redis_target(server.port)
    assert pid is not None and server.port != 6379
    up = await probe_once(target)
    server.stop()
    server.stop()
    down = await probe_once(target)
    assert up.state is State.OK and up.metrics["maxmemory"] == 64 * 1024 * 1024
    assert _stopped(pid) and not server.running
    assert (down.state, down.reason) == (State.CRITICAL, f"refuses connections — {target.address}")


def test_redis_without_its_binary_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="redis-server not found"):
        TemporaryRedis(tmp_path).start()
