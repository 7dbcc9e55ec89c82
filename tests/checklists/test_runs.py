"""Checklists run against real parts: HTTP services the inventory checks (one answers, one
fails), a Redis server, the store's incidents, the host's disk and the PromQL engine. Each item
is ✓, ! or ✗ as its figures say; the run is kept as the report with its counts and a
`checklist.ran` event; the command exits 0, 1 or 2 by the worst item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsplane.checklists import flows, service
from opsplane.checklists.loader import get
from opsplane.checklists.worker import ServePlatform
from opsplane.clock import ManualClock
from opsplane.config.loader import load
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.events import service as events
from opsplane.events.summary import describe
from opsplane.incidents import service as incidents
from opsplane.metrics.store import SampleStore
from opsplane.store import Store
from tests.support.cli import Opsplane
from tests.support.http_servers import LocalHttpServer, Reply

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ROUND = """\
name: round
title: Test round
steps:
  - {id: services, title: Every check passes, kind: report, read: health.checks}
  - {id: web, kind: check, check: web/http}
  - {id: api, kind: check, check: api/http}
  - {id: cache, kind: check, check: sessions/redis}
  - {id: errors, kind: query, promql: "vector(0.03)", warn_above: 0.01, fail_above: 0.05}
  - {id: incidents, kind: report, read: incidents.open}
  - {id: backups, kind: report, read: backup.status}
  - {id: disk, kind: report, read: host.disk, warn_at: 0}
  - {id: standup, kind: note, text: Prepare the stand-up.}
"""


@pytest.fixture
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRedis]:
    with TemporaryRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def web() -> Iterator[LocalHttpServer]:
    with LocalHttpServer({"/health": Reply(200, b"ok")}) as server:
        yield server


@pytest.fixture
def api() -> Iterator[LocalHttpServer]:
    with LocalHttpServer({"/health": Reply(503, b"down")}) as server:
        yield server


def site(tmp_path: Path, web: LocalHttpServer, api: LocalHttpServer, redis: TemporaryRedis,
         lists: dict[str, str]) -> dict[str, Any]:
    (tmp_path / "lists").mkdir(exist_ok=True)
    for name, text in lists.items():
        (tmp_path / "lists" / f"{name}.yaml").write_text(text)
    return {
        "platform": {"name": "shop"},
        "services": {name: {"url": f"http://127.0.0.1:{server.port}",
                            "checks": [{"type": "http", "path": "/health"}]}
                     for name, server in (("web", web), ("api", api))},
        "caches": {"sessions": {"port": redis.port, "checks": [{"type": "redis"}]}},
        "checklists": {"dir": "lists"},
    }


def test_a_run_judges_each_item_by_what_it_finds_and_keeps_the_report(
        tmp_path: Path, web: LocalHttpServer, api: LocalHttpServer, redis: TemporaryRedis) -> None:
    import yaml

    path = tmp_path / "opsplane.yaml"
    path.write_text(yaml.safe_dump(site(tmp_path, web, api, redis, {"round": ROUND})))
    inventory = load(path)
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    clock = ManualClock(NOW)
    with store.session() as session:
        incidents.create(session, title="Checkout fails", service="api", severity="P1", actor="cli:ana",
                         now=NOW, settings=inventory.incidents)
    platform = ServePlatform(inventory, base_dir=tmp_path, store=store, clock=clock, environ={},
                             source=SampleStore)
    run_id = flows.run(store, platform, get(inventory, tmp_path, "round"), clock=clock, trigger="api",
                       requested_by="token:ben")
    report = flows.report(store, run_id)
    found = {item["step"]: (item["outcome"], item["output"]) for item in report["items"]}
    assert {step: outcome for step, (outcome, _) in found.items()} == {
        "services": "failed", "web": "ok", "api": "failed", "cache": "ok", "errors": "warned",
        "incidents": "failed", "backups": "ok", "disk": "warned", "standup": "ok"}
    assert "2 of 3 checks ok" in found["services"][1]
    assert "api/http: CRITICAL HTTP 503" in found["services"][1]
    assert "1 incident open" in found["incidents"][1] and "P1" in found["incidents"][1]
    assert "above 0.01" in found["errors"][1]
    assert "% used" in found["disk"][1]
    assert (report["state"], report["ok"], report["warned"], report["failed"]) == ("failed", 3, 2, 3)
    assert service.exit_code(report["state"]) == 2
    with store.session() as session:
        [ran] = events.get_all(session, kind="checklist.ran")
        assert ran.actor == "token:ben" and ran.outcome == "failed"
        assert ran.details["failed"] == 3 and {"step": "api", "outcome": "failed"} in ran.details["items"]
        sentence = describe(ran)
    assert sentence.startswith("Checklist round ran (api): 3 ok, 2 warned, 3 failed: services failed")
    store.close()


ALL_WELL = """\
name: all-well
title: All well
steps:
  - {id: web, kind: check, check: web/http}
  - {id: cache, kind: check, check: sessions/redis}
  - {id: incidents, kind: report, read: incidents.open}
  - {id: handoff, kind: report, read: oncall.handoff}
"""
ONE_WARNS = """\
name: one-warns
title: One warns
steps:
  - {id: web, kind: check, check: web/http}
  - {id: disk, kind: report, read: host.disk, warn_at: 0, fail_at: 101}
"""
ONE_FAILS = """\
name: one-fails
title: One fails
steps:
  - {id: web, kind: check, check: web/http}
  - {id: api, kind: check, check: api/http}
"""


def test_the_command_prints_each_item_and_exits_by_the_worst(
        tmp_path: Path, web: LocalHttpServer, api: LocalHttpServer, redis: TemporaryRedis) -> None:
    opsplane = Opsplane(tmp_path, site(tmp_path, web, api, redis, {
        "all-well": ALL_WELL, "one-warns": ONE_WARNS, "one-fails": ONE_FAILS}))
    printed = opsplane("checklist", "run", "all-well").stdout
    assert "✓ web" in printed and "✓ incidents" in printed and "all ok: 4 ok, 0 warned, 0 failed" in printed
    opsplane("checklist", "run", "one-warns", code=1)
    failed = opsplane("checklist", "run", "one-fails", code=2).stdout
    assert "✗ api" in failed and "HTTP 503" in failed and "✓ web" in failed
    history = opsplane.json("checklist", "history")
    counts = [(h["checklist"], h["state"], h["ok"], h["warned"], h["failed"], h["trigger"]) for h in history]
    assert counts == [
        ("one-fails", "failed", 1, 0, 1, "cli"), ("one-warns", "warned", 1, 1, 0, "cli"),
        ("all-well", "ok", 4, 0, 0, "cli")]
    assert history[0]["not_ok"] == [{"step": "api", "outcome": "failed"}]
    only = opsplane.json("checklist", "history", "one-warns")
    assert [h["checklist"] for h in only] == ["one-warns"]
    shown = opsplane("checklist", "show", str(history[0]["id"]), code=2).stdout
    assert "One fails" in shown and "✗ api" in shown
    assert json.loads(opsplane("checklist", "show", str(history[2]["id"]), "--json").stdout)["state"] == "ok"
    opsplane("checklist", "run", "evening", code=3)
