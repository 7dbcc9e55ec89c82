"""A game day on the shop under `serve`: `opsplane gameday run kill-payments` stops payments'
instances, measures how long the platform took to notice (a failing check) and to page the
on-call primary (an SMS delivered through the outbox), starts payments again, and stores the
report, which `gameday report` reads back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

WATCH = """\
channels:
  named:
    sms: {{type: webhook, url: "{sms}"}}
oncall:
  people:
    ana: {{name: Ana Ruiz, contact: {{sms: "+15550100"}}}}
  schedules:
    shop:
      timezone: UTC
      handoff: {{day: mon, time: "09:00"}}
      layers:
        primary: {{start: "2026-01-05", rotation: [ana]}}
  policies:
    paging:
      steps:
        - {{notify: ["schedule:shop/primary"], via: [sms]}}
  severities: {{P1: paging}}
alerting:
  evaluation_interval: 1s
  builtin_rules: {{thresholds: {{check_failures: 2}}}}
"""

Played = tuple[DemoStack, Serve, LocalHttpServer]


@pytest.fixture(scope="module")
def gameday_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    stack = DemoStack(tmp_path_factory.mktemp("gameday") / "demo", paging=False, host_check=False,
                      traffic=False, backups=False, proxy=False)
    gateway = LocalHttpServer({"/sms": Reply(200, b"queued")})
    serve: Serve | None = None
    with gateway:
        try:
            stack.start_servers()
            path = stack.write_inventory(free_port())
            text = path.read_text().replace("defaults: {interval: 5s", "defaults: {interval: 1s")
            path.write_text(text + WATCH.format(sms=gateway.url("/sms")))
            stack.start_shop(load(path))
            serve = Serve(stack.base, path)
            serve.start()
            yield stack, serve, gateway
        finally:
            output = serve.stop() if serve is not None else ""
            stack.stop()
            assert "Traceback" not in output, output


def _gameday(serve: Serve, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "gameday", *args],
                          cwd=serve.workdir, env=serve.env, capture_output=True, text=True, timeout=240)


def test_killing_payments_measures_detection_and_paging_and_starts_it_again(gameday_shop: Played) -> None:
    stack, serve, gateway = gameday_shop
    ran = _gameday(serve, "run", "kill-payments", "--max-duration", "90s", "--yes", "--json")
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    report = json.loads(ran.stdout)
    measures = {m["name"]: m for m in report["measures"]}
    detect, page = measures["detect"], measures["page"]
    # the check runs every second and the rule fires after two failures; the primary is texted
    # once the incident opens: both well inside P1's 15 minutes, and in that order
    assert 0 < detect["seconds"] < 30, detect
    assert detect["seconds"] <= page["seconds"] < 90, page
    assert (detect["verdict"], page["verdict"], report["verdict"]) == ("pass", "pass", "pass")
    assert detect["target"] == page["target"] == 900.0
    assert report["severity"] == "P1" and report["incidents"]
    assert any(seen.path == "/sms" for seen in gateway.seen)

    # the fault is undone: payments runs and answers again
    assert stack.runtime is not None
    assert [s.state for s in stack.runtime.status() if s.service == "payments"] == ["running"]
    answer = httpx.get(f"http://127.0.0.1:{stack.ports['payments']}/health", timeout=5, trust_env=False)
    assert answer.status_code == 200

    stored = _gameday(serve, "report", str(report["gameday"]), "--json")
    assert stored.returncode == 0, stored.stderr
    row = json.loads(stored.stdout)
    assert (row["state"], row["verdict"]) == ("finished", "pass")
    assert row["report"]["measures"] == report["measures"]
    assert "started again" in row["undone"]
    text = _gameday(serve, "report", str(report["gameday"]), "--markdown").stdout
    assert text.startswith(f"# Game day {report['gameday']}: kill-payments") and "Time to page" in text
    kinds = [e["kind"] for e in json.loads(serve.cli("events", "--kind", "gameday.*", "--json"))]
    assert sorted(kinds) == ["gameday.ended", "gameday.finished", "gameday.injected"]


def test_an_operator_asks_serve_for_a_game_day_and_a_viewer_reads_its_report(gameday_shop: Played) -> None:
    stack, serve, _ = gameday_shop
    viewer = json.loads(serve.cli("token", "create", "--name", "wall", "--role", "viewer", "--json"))["token"]
    operator = json.loads(serve.cli("token", "create", "--name", "sre", "--role", "operator",
                                    "--json"))["token"]
    asked = {"scenario": "payments-errors", "max_duration": 3}
    with httpx.Client(base_url=f"{serve.url}/api/v1", timeout=10, trust_env=False) as api:
        refused = api.post("/gamedays", json=asked, headers={"Authorization": f"Bearer {viewer}"})
        assert refused.status_code == 403  # a game day changes the world: operators only
        answer = api.post("/gamedays", json=asked, headers={"Authorization": f"Bearer {operator}"})
        assert answer.status_code == 202, answer.text
        gameday_id = answer.json()["id"]

        def finished() -> dict[str, Any] | None:
            row = api.get(f"/gamedays/{gameday_id}", headers={"Authorization": f"Bearer {viewer}"}).json()
            return row if row["state"] == "finished" else None

        row = wait_for(finished, "serve's game day worker to play it", timeout=90)
        text = api.get(f"/gamedays/{gameday_id}", params={"format": "markdown"},
                       headers={"Authorization": f"Bearer {viewer}"}).text
    assert row["trigger"] == "api" and row["requested_by"].endswith("sre")
    assert row["report"]["fault_seconds"] >= 3
    # nobody shops in this test, so no request failed and nothing noticed: the game day says so
    assert row["verdict"] == "fail" and text.startswith(f"# Game day {gameday_id}: payments-errors")
    faults = httpx.get(f"http://127.0.0.1:{stack.ports['payments']}/admin/faults", trust_env=False,
                       headers={"Authorization": f"Bearer {stack.admin_token()}"}).json()
    assert faults["error_ratio"] == {}  # undone
