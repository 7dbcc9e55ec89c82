"""Security signals end to end on the real shop gateway, run by opsplane's runtime: a burst of
failed sign-ins and 404s from one client makes FailedLoginSpike, AuthDeniedSpike and
NotFoundScan fire (the rule pack's expressions by opsplane's PromQL engine over the gateway's
scraped samples), and the security-signals job, reading the gateway's log files, names the
client as a brute force. No password reaches the log."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsplane.alerts.engine import evaluate_with
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.pack import builtin_rules
from opsplane.alerts.state import Alert, AlertState, evaluate_rule
from opsplane.clock import ManualClock, SystemClock
from opsplane.config.loader import load
from opsplane.drivers.runtime.process import ProcessRuntime
from opsplane.drivers.sandbox.ports import free_port
from opsplane.metrics.ingest import ingest
from opsplane.metrics.scrape import scrape_targets
from opsplane.metrics.store import SampleStore
from opsplane.reports.jobs import JobEnv, get, run_job
from opsplane.store import Store
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
WRONG = "guess-71c3e9"
INVENTORY = """\
platform: {{name: shop}}
services:
  gateway:
    port: {port}
    metrics_path: /metrics
    run:
      argv: [{python}, -m, shop, gateway, --host, 127.0.0.1, --port, '{{port}}']
      env: {{SHOP_CLIENT_WINDOW: '1', SHOP_DATA_DIR: '{data}', PYTHONPATH: '{repo}'}}
      stop_timeout: 5s
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("signals")
    port = free_port()
    (root / "opsplane.yaml").write_text(INVENTORY.format(port=port, python=sys.executable,
                                                         data=root / "shop", repo=REPO))
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("SHOP_")},
               "OPSPLANE_DATABASE_URL": f"sqlite:///{root}/opsplane.db"}
    Store.open(environ["OPSPLANE_DATABASE_URL"]).close()
    driver = ProcessRuntime(load(root / "opsplane.yaml"), base_dir=root, environ=environ, actor="test")
    driver.up(["gateway"])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/version"), "the gateway to answer", timeout=30)
        yield root, url, environ
    finally:
        driver.down()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_burst_of_failed_sign_ins_fires_the_rules_and_the_job_names_the_client(
        gateway: tuple[Path, str, dict[str, str]]) -> None:
    root, url, environ = gateway
    inventory = load(root / "opsplane.yaml")
    target = next(t for t in scrape_targets(inventory, "production") if t.component == "gateway")
    t0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    samples = SampleStore(window=3600, clock=ManualClock(t0 + timedelta(minutes=5)))

    def scrape(at: datetime) -> None:
        ingest(samples, target, "production", httpx.get(f"{url}/metrics", timeout=5).text,
               at=at.timestamp(), duration=0.01)

    settings = AlertingSettings.model_validate({"builtin_rules": {"window": "2m", "for": "30s"}})
    rules = [r for r in builtin_rules(settings.builtin_rules)
             if r.name in ("FailedLoginSpike", "AuthDeniedSpike", "NotFoundScan")]
    assert len(rules) == 3
    evaluate = evaluate_with(samples)
    alerts: dict[str, dict[str, Alert]] = {r.name: {} for r in rules}

    def cycle(at: datetime) -> dict[str, str]:
        states = {}
        for rule in rules:
            done = evaluate_rule(rule, evaluate(rule.expr, at), alerts[rule.name], at)
            alerts[rule.name] = {a.fingerprint: a for a in done.alerts}
            states[rule.name] = ",".join(sorted(f"{a.state.value}:{a.labels['service']}"
                                                for a in done.alerts))
        return states

    with httpx.Client(base_url=url, timeout=5) as client:
        for user in ("alice", "bob"):  # shoppers signing in as they should
            assert client.post("/login", json={"username": user, "password": "shop-demo"}).status_code == 200
        # a mistyped password and a stale link, as any shop has: the 401 and 404 series exist
        # before the burst, so that their rates see it (a counter's first sample has no rate)
        assert client.post("/login", json={"username": "carol", "password": "shop-dem"}).status_code == 401
        assert client.get("/api/old-page").status_code == 404
        scrape(t0)
        assert cycle(t0) == {r.name: "" for r in rules}
        for attempt in range(60):  # one client guessing passwords
            guess = {"username": ("alice", "root")[attempt % 2], "password": WRONG}
            answer = client.post("/login", json=guess)
            assert answer.status_code == 401
        for path in ("/.env", "/wp-admin", "/admin.php", "/.git/config") * 40:  # and looking for files
            assert client.get(path).status_code == 404
    scrape(t0 + timedelta(seconds=30))
    scrape(t0 + timedelta(seconds=60))
    pending = cycle(t0 + timedelta(seconds=60))
    assert pending == {r.name: "pending:gateway" for r in rules}
    scrape(t0 + timedelta(seconds=90))
    firing = cycle(t0 + timedelta(seconds=90))
    assert firing == {r.name: "firing:gateway" for r in rules}
    failed = next(iter(alerts["FailedLoginSpike"].values()))
    assert failed.state is AlertState.FIRING and failed.value > 10  # failed sign-ins a minute

    # the job reads the gateway's log files through the runtime: the window of client counts is
    # written at the first request after it closes (one second here)
    store = Store.open(environ["OPSPLANE_DATABASE_URL"])
    try:
        env = JobEnv(inventory, root, store, SystemClock(), environ=environ)

        def judged() -> Any:
            httpx.get(f"{url}/nothing-here", timeout=5)
            made = run_job(get("security-signals"), env)
            # every window of the burst written: 61 refused sign-ins and 161 answers 404
            top = made.body["top_clients"] if made is not None else []
            return made if top and top[0]["denied"] >= 222 else None

        report = wait_for(judged, "the gateway's traffic window in its log", timeout=20)
    finally:
        store.close()
    assert report.outcome == "critical"
    critical = [f for f in report.findings if f.severity == "critical"]
    assert [f.subject for f in critical] == ["127.0.0.1"]
    assert "61 failed sign-ins" in critical[0].what and "?, alice, carol" in critical[0].what
    assert report.body["logins"] == {"failed": 61, "ok": 2}
    assert report.body["top_clients"][0]["client"] == "127.0.0.1"
    assert report.body["top_clients"][0]["requests"] >= 224
    logs = "".join(p.read_text() for p in (root / ".opsplane").rglob("gateway.*.log*"))
    assert "login result=failed user=alice client=127.0.0.1" in logs
    assert "user=root" not in logs  # a name that is no account is not written down
    assert WRONG not in logs and "shop-demo" not in logs
