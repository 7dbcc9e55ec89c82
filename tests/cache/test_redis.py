"""The cache report, flush and warm-up against a real redis-server of the test's own.

Keys of known sizes (one big key the sample finds), lookups giving a known hit ratio,
evictions under a small maxmemory, a cache that does not answer; flush through the command
as a person types it, refused without the name and for roles below operator; and the shop's
catalog warming its hot keys back after a flush so that the hit ratio recovers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from opsplane.cache.flows import Warmer, cache_report, flush, warm, warmers
from opsplane.clock import ManualClock
from opsplane.config.models import Inventory
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.events import service as events
from opsplane.store import Store
from tests.support.cli import Opsplane

PASSWORD = "cache-test-secret"
ENV = {"REDIS_PASS": PASSWORD}
# the command run from this checkout, whatever the environment's installed copy is
CLI_ENV = {**ENV, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
MiB = 2**20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TemporaryRedis]:
    with TemporaryRedis(tmp_path / "redis", password=PASSWORD) as started:
        yield started


def inventory_dict(port: int, **extra: Any) -> dict[str, Any]:
    return {"platform": {"name": "shop"},
            "caches": {"redis": {"port": port, "password": "env:REDIS_PASS"}}, **extra}


def inventory(port: int, **extra: Any) -> Inventory:
    return Inventory.model_validate(inventory_dict(port, **extra))


def fill(server: TemporaryRedis) -> None:
    """db0: 50 keys of 100 bytes and one of 2 MiB; db2: 5 keys; 70 hits and 30 misses."""
    client = server.client()
    try:
        client.mset({f"item:{i}": "v" * 100 for i in range(50)})
        client.set("blob", "b" * (2 * MiB))
        for i in range(70):
            assert client.get(f"item:{i % 50}") is not None
        for i in range(30):
            assert client.get(f"absent:{i}") is None
        client.execute_command("SELECT", 2)
        client.mset({f"other:{i}": "x" for i in range(5)})
    finally:
        client.close()


def test_the_report_reads_memory_hit_ratio_keyspace_and_finds_the_big_key(server: TemporaryRedis) -> None:
    fill(server)
    report = cache_report(inventory(server.port), ENV, "redis", sample_size=1000)

    row = report.body["caches"][0]
    assert (row["keyspace_hits"], row["keyspace_misses"], row["hit_ratio"]) == (70, 30, 0.7)
    assert [(db["db"], db["keys"]) for db in row["keyspace"]] == [(0, 51), (2, 5)]
    assert row["used_memory"] > 2 * MiB and row["maxmemory"] is None
    assert row["sample"]["looked_at"] == {"0": 51, "2": 5}
    biggest = row["sample"]["biggest"][0]
    assert (biggest["db"], biggest["key"], biggest["type"]) == (0, "blob", "string")
    assert biggest["bytes"] >= 2 * MiB
    found = {(f.severity, f.what.split(" (")[0]) for f in report.findings}
    assert ("warning", "hit ratio 70%") in found
    assert ("warning", "big key 'blob' in db 0") in found
    assert report.outcome == "warning"
    assert PASSWORD not in repr(report)


def test_a_small_sample_looks_at_no_more_keys_than_asked(server: TemporaryRedis) -> None:
    fill(server)
    row = cache_report(inventory(server.port), ENV, sample_size=10).body["caches"][0]
    assert row["sample"]["looked_at"] == {"0": 10, "2": 5}
    assert row["sample"]["sample_size"] == 10


def test_evictions_under_a_small_maxmemory_warn_with_a_volatile_policy(tmp_path: Path) -> None:
    with TemporaryRedis(tmp_path / "small", maxmemory=3 * MiB,
                        extra_args=["--maxmemory-policy", "volatile-lru"]) as small:
        client = small.client()
        try:
            for i in range(200):
                client.set(f"page:{i}", "p" * 50_000, ex=3600)
        finally:
            client.close()
        report = cache_report(Inventory.model_validate(
            {"platform": {"name": "shop"}, "caches": {"redis": {"port": small.port}}}), {})
    row = report.body["caches"][0]
    assert row["evicted_keys"] > 0 and row["maxmemory"] == 3 * MiB
    evicted = [f for f in report.findings if "evicted" in f.what]
    assert [f.severity for f in evicted] == ["warning"]
    said = f"{row['evicted_keys']} keys evicted under maxmemory-policy volatile-lru"
    assert evicted[0].what.startswith(said)
    assert any(f.severity == "critical" and f.what.startswith("memory") for f in report.findings)


def test_a_cache_that_does_not_answer_fails_the_report_with_its_address(tmp_path: Path) -> None:
    port = free_port()
    report = cache_report(inventory(port), ENV)
    assert report.outcome == "failed"
    assert f"redis at redis://127.0.0.1:{port}:" in report.findings[0].what
    cli = Opsplane(tmp_path, inventory_dict(port), CLI_ENV)
    ran = cli("cache", "report", code=2)
    assert f"127.0.0.1:{port}" in ran.stdout


def test_the_report_command_prints_json_and_exits_1_on_a_warning(tmp_path: Path,
                                                                  server: TemporaryRedis) -> None:
    fill(server)
    cli = Opsplane(tmp_path, inventory_dict(server.port), CLI_ENV)
    ran = cli("cache", "report", "redis", "--json", code=1)
    import json

    data = json.loads(ran.stdout)
    assert data["outcome"] == "warning" and data["caches"][0]["hit_ratio"] == 0.7
    text = cli("cache", "report", code=1).stdout
    assert "biggest keys (a sample of 56 keys, at most 1000 per db): blob (db0, string" in text
    assert cli("cache", "report", "sessions", code=3).stderr.count("no cache 'sessions'") == 1


# --- flush --------------------------------------------------------------------------------


def typed(cli: Opsplane, *args: str, answer: str | None,
          role: str = "operator") -> subprocess.CompletedProcess[str]:
    """The command with `answer` typed at its question (None: nothing to read)."""
    return subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", *args],
                          input=answer, capture_output=True, text=True, cwd=cli.cwd, timeout=60,
                          env={**cli.env, "OPSPLANE_LOCAL_ROLE": role})


def keys(server: TemporaryRedis, db: int = 0) -> int:
    client = server.client()
    try:
        client.execute_command("SELECT", db)
        return int(client.dbsize())
    finally:
        client.close()


def flushed_events(cli: Opsplane) -> list[Any]:
    store = Store.open(cli.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            found = events.get_all(session, kind="cache.flushed")
            return [(e.actor, e.outcome, dict(e.details)) for e in found]
    finally:
        store.close()


def test_flush_needs_the_cache_name_typed_back(tmp_path: Path, server: TemporaryRedis) -> None:
    fill(server)
    cli = Opsplane(tmp_path, inventory_dict(server.port), CLI_ENV)
    nothing = typed(cli, "cache", "flush", "redis", answer=None)
    assert nothing.returncode == 3 and "--yes-i-mean redis" in nothing.stderr
    wrong = typed(cli, "cache", "flush", "redis", answer="yes\n")
    assert wrong.returncode == 3 and "not confirmed" in wrong.stderr
    mistyped = typed(cli, "cache", "flush", "redis", "--yes-i-mean", "redis-2", answer=None)
    assert mistyped.returncode == 3
    assert keys(server) == 51 and flushed_events(cli) == []

    done = typed(cli, "cache", "flush", "redis", answer="redis\n")
    assert done.returncode == 0, done.stderr
    assert "51 keys deleted" in done.stdout
    assert keys(server) == 0 and keys(server, 2) == 5  # only the database asked for
    assert flushed_events(cli) == [("cli:ana", "success", {
        "cache": "redis", "db": 0, "address": f"redis://127.0.0.1:{server.port}", "keys": 51})]


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_flush_is_refused_below_the_operator_role(tmp_path: Path, server: TemporaryRedis, role: str) -> None:
    fill(server)
    cli = Opsplane(tmp_path, inventory_dict(server.port), CLI_ENV)
    ran = typed(cli, "cache", "flush", "redis", "--yes-i-mean", "redis", answer="redis\n", role=role)
    assert ran.returncode == 3 and "needs the operator role" in ran.stderr
    assert keys(server) == 51 and flushed_events(cli) == []


def test_flush_of_another_database_for_scripts(tmp_path: Path, server: TemporaryRedis) -> None:
    fill(server)
    cli = Opsplane(tmp_path, inventory_dict(server.port), CLI_ENV)
    data = cli.json("cache", "flush", "redis", "--db", "2", "--yes-i-mean", "redis")
    assert data == {"cache": "redis", "address": f"redis://127.0.0.1:{server.port}", "db": 2, "keys": 5}
    assert keys(server, 2) == 0 and keys(server) == 51


def test_the_runbooks_flush_action_is_the_same_flush(tmp_path: Path, server: TemporaryRedis) -> None:
    from opsplane.runbooks.actions import ActionContext, run_action

    fill(server)
    store = Store.open(f"sqlite:///{tmp_path}/store.db")
    try:
        context = ActionContext(inventory(server.port), tmp_path, store, "runbook:cache-issues",
                                ManualClock(), ENV, "runbook cache-issues, run 3")
        outcome, said = run_action(SimpleNamespace(action="flush-cache", target="redis"), context)
        assert outcome == "ok"
        assert said == f"flushed cache redis at redis://127.0.0.1:{server.port}: 51 keys deleted"
        with store.session() as session:
            recorded = events.get_all(session, kind="cache.flushed")
            assert [(e.actor, e.details["keys"], e.details["reason"]) for e in recorded] == [
                ("runbook:cache-issues", 51, "runbook cache-issues, run 3")]
        server.stop()
        outcome, said = run_action(SimpleNamespace(action="flush-cache", target="redis"), context)
        assert outcome == "failed" and f"127.0.0.1:{server.port}" in said
    finally:
        store.close()


# --- warm-up through the shop's catalog ------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path, server: TemporaryRedis, postgres_cluster: Any) -> Iterator[Any]:
    from tests.shop.shopstack import ADMIN_TOKEN, start_stack

    name = f"shop_warm_{os.getpid()}_{free_port()}"
    postgres_cluster.execute(f'CREATE DATABASE "{name}"')
    stack = start_stack(("catalog",), {"SHOP_DATABASE_URL": postgres_cluster.url(name),
                                       "SHOP_REDIS_URL": server.url, "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
                                       "SHOP_CACHE_TTL": "600"}, tmp_path)
    try:
        yield stack.services["catalog"]
    finally:
        stack.stop()


def hit_ratio_of_hot_reads(server: TemporaryRedis, url: str) -> float:
    """Redis's counters reset, then what shoppers read most: the first page and products 1-20."""
    import httpx

    client = server.client()
    try:
        client.config_resetstat()
        for path in ["/products", *[f"/products/{i}" for i in range(1, 21)]]:
            assert httpx.get(url + path, timeout=10).status_code == 200
        stats = client.info("stats")
    finally:
        client.close()
    return float(stats["keyspace_hits"]) / (stats["keyspace_hits"] + stats["keyspace_misses"])


def test_after_a_flush_the_warm_up_brings_the_hit_ratio_back(tmp_path: Path, server: TemporaryRedis,
                                                             catalog: Any) -> None:
    from tests.shop.shopstack import ADMIN_TOKEN

    store = Store.open(f"sqlite:///{tmp_path}/store.db")
    inv = inventory(server.port, services={"catalog": {
        "depends_on": ["redis"],
        "run": {"argv": ["catalog"], "secret_env": {"SHOP_ADMIN_TOKEN": "env:ADMIN"}}}})
    clock = ManualClock()
    try:
        assert hit_ratio_of_hot_reads(server, catalog.url) == 0.0  # a cold cache
        assert hit_ratio_of_hot_reads(server, catalog.url) == 1.0  # filled by those reads
        flush(store, inv, "redis", actor="cli:ana", clock=clock, environ=ENV)
        assert hit_ratio_of_hot_reads(server, catalog.url) == 0.0  # cold again

        flush(store, inv, "redis", actor="cli:ana", clock=clock, environ=ENV)
        found = warmers(inv, "redis", {**ENV, "ADMIN": ADMIN_TOKEN}, {"catalog": [free_port(), catalog.port]})
        assert found == [Warmer("catalog", (found[0].urls[0], catalog.url), ADMIN_TOKEN)]
        result = warm(store, "redis", found, actor="cli:ana", clock=clock)
        assert result["warmed"] == {"catalog": {"keys": 21, "pages": 1, "products": 20}}
        assert len(result["problems"]) == 1  # the first port answers nothing: the next instance did it
        assert hit_ratio_of_hot_reads(server, catalog.url) == 1.0
        with store.session() as session:
            warmed = events.get_all(session, kind="cache.warmed")
            assert [(e.outcome, e.details["keys"], e.details["services"]) for e in warmed] == [
                ("success", 21, ["catalog"])]
    finally:
        store.close()


def test_the_warm_up_route_wants_the_admin_token(catalog: Any) -> None:
    import httpx

    assert httpx.post(catalog.url + "/admin/cache/warm", timeout=10).status_code == 401
    wrong = httpx.post(catalog.url + "/admin/cache/warm", headers={"Authorization": "Bearer nope"},
                       timeout=10)
    assert wrong.status_code == 403


def test_warm_is_refused_when_no_service_can_do_it(tmp_path: Path, server: TemporaryRedis) -> None:
    cli = Opsplane(tmp_path, inventory_dict(server.port), CLI_ENV)
    ran = cli("cache", "warm", "redis", code=3)
    assert "no service depends on cache 'redis'" in ran.stderr
    inv = inventory(server.port, services={"catalog": {"depends_on": ["redis"], "run": {"argv": ["c"]}}})
    with pytest.raises(Exception, match="catalog: its run section gives it no SHOP_ADMIN_TOKEN"):
        warmers(inv, "redis", ENV, {"catalog": [1234]})
