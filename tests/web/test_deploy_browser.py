"""The deploy page in headless Debian Chromium during a real canary: the shop's catalog runs
under the process runtime behind nginx, `opsplane serve` carries out a canary of catalog v2
whose analysis step lasts two minutes, and shoppers' requests go through the proxy meanwhile.
The page shows half of the requests on v2 and the analysis step as the current one; an operator
aborts from the page's button and watches it roll back. Screenshots go to
build/test-artifacts/."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsplane.config.loader import load
from opsplane.drivers.runtime.process import ProcessRuntime
from opsplane.drivers.sandbox.ports import free_port
from tests.support.browser import ARTIFACTS, browser_tests, expect, signed_in
from tests.support.nginx import nginx_binary
from tests.support.polling import wait_for
from tests.support.serve import Serve, serving

pytestmark = [*browser_tests, pytest.mark.skipif(nginx_binary() is None,
                                                 reason="nginx is not installed (scripts/bootstrap.sh)")]
SHOPPERS_PER_SECOND = 20


def shop_inventory(base: Path, catalog_port: int, edge_port: int) -> str:
    """The demo's catalog (opsplane/demo/stack.py) alone, on SQLite, behind nginx, with a
    canary whose 50 % step is analysed for two minutes."""
    python = json.dumps(sys.executable)
    data = json.dumps(str(base / "shop-data"))  # not "shop": the package is imported from here
    return f"""\
platform: {{name: shop, default_environment: development}}
environments: {{development: {{host: 127.0.0.1}}}}
defaults: {{interval: 1s, timeout: 1s}}
runtime: {{driver: process, state_dir: run}}
services:
  catalog:
    port: {catalog_port}
    proxy: edge
    metrics_path: /metrics
    checks: [{{name: health, type: http, path: /health}}]
    run:
      argv: [{python}, -m, shop, catalog, --host, 127.0.0.1, --port, '{{port}}']
      version: v1
      env: {{SHOP_DATA_DIR: {data}, SHOP_VERSION: '{{version}}'}}
      stop_timeout: 5s
proxies:
  edge:
    engine: nginx
    port: {edge_port}
    checks: [{{type: http, path: /health}}]
alerting: {{builtin_rules: {{enabled: false}}}}
deploy:
  strategy: canary
  windows: {{}}
  canary: {{steps: [50, 100], step_duration: 120s, interval: 5s}}
  services:
    catalog: {{releases: [v1, v2]}}
"""


class Shoppers:
    """Product listings asked for through the proxy, at a steady rate, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoppers", daemon=True)

    def __enter__(self) -> Shoppers:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=5, trust_env=False) as client:
            while not self._stop.wait(1 / SHOPPERS_PER_SECOND):
                try:
                    answer = client.get(self.url)
                    release = answer.headers.get("x-version", f"HTTP {answer.status_code}")
                except httpx.HTTPError as exc:
                    release = type(exc).__name__
                self.answers[release] = self.answers.get(release, 0) + 1


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Serve, ProcessRuntime, int]]:
    catalog = free_port()
    with serving(tmp_path, shop_inventory(tmp_path, catalog, free_port()), free_port()) as serve:
        runtime = ProcessRuntime(load(serve.inventory), base_dir=tmp_path, environ=serve.env,
                                 actor="cli:tester")
        try:
            runtime.up()
            wait_for(lambda: _answers(f"http://127.0.0.1:{catalog}/products"), "catalog through nginx",
                     timeout=60)
            yield serve, runtime, catalog
        finally:
            runtime.down()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_deploy_page_follows_a_canary_and_aborts_it(shop: tuple[Serve, ProcessRuntime, int]) -> None:
    serve, runtime, catalog = shop
    token = json.loads(serve.cli("token", "create", "--name", "ana", "--role", "operator", "--json"))["token"]
    serve.start()
    with Shoppers(f"http://127.0.0.1:{catalog}/products") as shoppers:
        serve.cli("deploy", "catalog", "v2", "--no-wait")
        wait_for(lambda: (lambda d: d["state"] == "running" and d["steps"][d["step"]]["kind"] == "analyse")(
            serve.read("deploy", "status", "1")), "the canary to reach its analysis at 50 %", timeout=120)
        wait_for(lambda: shoppers.answers.get("v2", 0) >= 100, "shoppers answered by v2", timeout=30)

        with signed_in(serve.url, token, "/ui/deploys/1", width=1400, height=1100) as page:
            split = page.locator("#deploy-split .split")
            expect(split).to_have_attribute("data-new-percent", "50")
            expect(page.locator("#deploy-split .split-legend")).to_contain_text("v2 (new) 50 %")
            expect(page.locator("#deploy-split .split-proof")).to_contain_text("v2 answered")
            expect(page.locator('li[data-step="4"]')).to_have_attribute("data-mark", "now")
            expect(page.locator('li[data-step="4"]')).to_contain_text("a verdict is due within")
            expect(page.locator('li[data-step="3"]')).to_have_attribute("data-mark", "done")
            expect(page.locator('#deploy-head [data-state]')).to_have_text("running")
            expect(page.locator('figure[data-chart="release-requests"] .legend')).to_contain_text("v2 (new)")
            page.screenshot(path=str(ARTIFACTS / "dashboard-deploy-canary.png"), full_page=True)

            page.click('button[data-action="abort"]')
            page.wait_for_url(serve.url + "/ui/deploys/1")
            head = page.locator("#deploy-head [data-state]")
            expect(head).to_have_text(re.compile(r"^(rolling back|rolled back)$"))
            expect(head).to_have_attribute("data-state", "rolled_back", timeout=60_000)  # the page refreshes
            expect(page.locator("#deploy-head")).to_contain_text("aborted by token:ana")
            expect(page.locator('li[data-rollback-step="1"]')).to_have_attribute("data-mark", "done")
            expect(page.locator('li[data-step="4"]')).to_have_attribute("data-mark", "stopped")
            expect(split).to_have_attribute("data-new-percent", "0")
            page.screenshot(path=str(ARTIFACTS / "dashboard-deploy-rolled-back.png"), full_page=True)

            page.click('#deploy-head a[href="/ui/services/catalog"]')
            page.click('a[data-deploys="catalog"]')
            row = page.locator('tr[data-deploy="1"]')
            expect(row).to_contain_text("v1 → v2")
            expect(row).to_contain_text("rolled back")
            page.screenshot(path=str(ARTIFACTS / "dashboard-deploys.png"), full_page=True)
    assert shoppers.answers.get("v1", 0) > 0 and shoppers.answers.get("v2", 0) > 0, shoppers.answers
    assert set(shoppers.answers) <= {"v1", "v2"}, shoppers.answers  # no request failed
    statuses = {s.service: s.version for s in runtime.status() if s.state == "running"}
    assert statuses.get("catalog") == "v1" and "catalog@v2" not in statuses
