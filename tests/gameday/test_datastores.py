"""Stopping a database or cache for a game day: refused for a server opsplane did not start (the
machine's own, another team's), with nothing changed and the refusal in the event log; a Redis
server the demo recorded is stopped and started again on the same port."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from opsplane.config.models import Inventory
from opsplane.demo import records
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.gameday.catalog import scenarios
from opsplane.gameday.datastores import FaultRefused
from opsplane.gameday.faults import Where, open_fault
from tests.support.cli import Opsplane


def test_a_database_opsplane_did_not_start_is_refused_and_left_running(
        tmp_path: Path, postgres_cluster: TemporaryPostgres) -> None:
    cli = Opsplane(tmp_path, {
        "platform": {"name": "shop"},
        "databases": {"main": {"port": postgres_cluster.port, "user": postgres_cluster.user,
                               "checks": [{"type": "postgres"}]}}})
    refused = cli("gameday", "run", "stop-main", "--yes", code=3)
    assert "not a server opsplane started" in refused.stderr
    assert "shared" in refused.stderr  # the reason says it may be the machine's own
    assert postgres_cluster.execute("SELECT 1") == [(1,)]  # still answering
    [event] = cli.json("events", "--kind", "gameday.refused")
    assert event["service"] == "main" and event["outcome"] == "refused"


def test_a_server_elsewhere_than_loopback_is_refused(tmp_path: Path) -> None:
    inventory = Inventory.model_validate({"platform": {"name": "shop"},
                                          "caches": {"sessions": {"host": "10.0.0.7", "port": 6379}}})
    fault = open_fault(scenarios(inventory)["stop-sessions"], Where(inventory, tmp_path, {}, "cli:ana"))
    with pytest.raises(FaultRefused, match="not on this machine's loopback"):
        fault.check()


def test_a_redis_the_demo_recorded_is_stopped_and_started_again(tmp_path: Path) -> None:
    server = TemporaryRedis(tmp_path / "redis").start()
    try:
        records.record(tmp_path, {"redis": server.pid})
        inventory = Inventory.model_validate({"platform": {"name": "shop"},
                                              "caches": {"redis": {"port": server.port}}})
        fault = open_fault(scenarios(inventory)["stop-redis"], Where(inventory, tmp_path, {}, "cli:ana"))
        fault.check()
        record = fault.inject()
        with pytest.raises(redis.ConnectionError):
            server.client().ping()
        assert "started again" in fault.undo(record)
        assert server.client().ping()
        restarted = records.own(tmp_path)["redis"]
        assert restarted.pid != server.pid  # the record follows it, so `demo --stop` ends it
    finally:
        records.stop(tmp_path)
        server.stop()


def test_a_postgresql_the_demo_recorded_is_stopped_and_started_again_with_its_options(tmp_path: Path) -> None:
    server = TemporaryPostgres(tmp_path / "pg", settings={"application_name": "gameday-shop"}).start()
    try:
        records.record(tmp_path, {"postgres": server.pid})
        inventory = Inventory.model_validate({"platform": {"name": "shop"},
                                              "databases": {"main": {"port": server.port}}})
        fault = open_fault(scenarios(inventory)["stop-main"], Where(inventory, tmp_path, {}, "cli:ana"))
        fault.check()
        record = fault.inject()
        assert not server.running
        assert "started again" in fault.undo(record)
        # the same port and the same settings as before it stopped
        assert server.execute("SHOW application_name") == [("gameday-shop",)]
        assert records.own(tmp_path)["postgres"].pid != server.pid
    finally:
        records.stop(tmp_path)
        server.stop()
