"""Time to safety: a canary of a bad release under load, from `opsplane deploy` to the moment
every answer through the proxy comes from the stable release again.

The platform is the demo's (`DemoStack`): PostgreSQL, Redis, the shop's four services under
opsplane's process runtime, nginx in front of them (`proxies: edge`), and `opsplane serve` as a
child process on the same store, scraping every 5 s and running the deploy worker. The demo's
inventory is used as it is, except that the built-in alert rules are off: an alert the bad
release raises would otherwise block the next deploy of the same service for minutes.

Beside opsplane's verdict, Flagger's way is computed on the same samples: the counters `serve`
scraped are read back from its API (`/api/v1/query`, raw samples), loaded into a sample store
and cut into one-minute intervals by `opsplane.deploy.collect.intervals`, the function the
deploy worker itself uses, then judged by `flagger_style` (threshold 5, 1 % errors, 500 ms p99).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import Child, Children, free_port, wait_for_http
from _deploy_load import Answer, CartSupply, Load, LoadAverage, Send, catalog_request, checkout_request

from opsplane.demo.stack import DemoStack
from opsplane.deploy.analysis import combine, flagger_style
from opsplane.deploy.collect import intervals

SCRAPE_SECONDS = 5.0  # the demo inventory's interval
FLAGGER_INTERVAL = 60.0
FLAGGER_THRESHOLD = 5
SETTLE_SECONDS = 10.0  # load kept after the deploy ends, to see that no answer of the canary comes


@dataclass(frozen=True)
class BadRelease:
    service: str
    release: str
    fault: str


BAD_RELEASES = (BadRelease("orders", "v2-bad", "5 % of checkouts fail (HTTP 500)"),
                BadRelease("catalog", "v2-slow", "300 ms more on product pages"))


@dataclass
class SafetyRun:
    """One canary of a bad release, as the clients and the deploy's record saw it."""

    service: str
    release: str
    state: str  # the deploy's final state
    reason: str
    time_to_safety: float | None  # seconds from the command to the last answer of the canary
    first_canary_answer: float | None  # seconds from the command
    rollback_decided: float | None  # the deploy's rolling_back event, seconds from the command
    deploy_ended: float | None
    answers: int
    canary_answers: int
    canary_errors: int
    stable_errors: int
    no_answer: int
    rate: float  # requests a second the load achieved during the run
    canary_share: float  # of the answers between the canary's first and last
    verdict: str
    flagger: dict[str, Any] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)


class Platform:
    """The shop under opsplane's runtime, nginx in front, `opsplane serve` on the same store."""

    def __init__(self, children: Children, tmp: Path, opsplane: list[str], progress: Callable[[str], None]):
        self.children, self.tmp, self.opsplane, self.progress = children, tmp, opsplane, progress
        self.stack = DemoStack(tmp / "platform", traffic=False, paging=False, host_check=False)
        self.serve: Child | None = None
        self.carts: CartSupply | None = None
        self.token = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, *, serve: bool = True) -> None:
        """The platform; `opsplane serve` too when `serve`."""
        from opsplane.auth import service as tokens
        from opsplane.auth.service import Role
        from opsplane.config.loader import load
        from opsplane.store import Store

        self.progress("starting PostgreSQL, Redis, the shop and nginx under opsplane's runtime")
        self.stack.start_servers()
        if self.stack.postgres is None or self.stack.redis is None:
            raise RuntimeError(f"the benchmark needs PostgreSQL and Redis: {'; '.join(self.stack.notes)}")
        self.api_port = free_port()
        path = self.stack.write_inventory(self.api_port)
        if not self.stack.proxy:
            raise RuntimeError("the benchmark needs nginx in front of the shop (scripts/bootstrap.sh)")
        inventory = yaml.safe_load(path.read_text())
        inventory.setdefault("alerting", {})["builtin_rules"] = {"enabled": False}
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        self.stack.start_shop(load(path))
        self.carts = CartSupply(self.database_url())
        if not serve:
            return
        store = Store.open(self.stack.store_url)
        try:
            with store.session() as session:
                self.token = tokens.create(session, name="bench", role=Role.ADMIN, actor="system:bench")
        finally:
            store.close()
        self.serve = self.children.start(Child(
            "opsplane serve", [*self.opsplane, "-c", str(path), "serve", "--port", str(self.api_port),
                               "--log-level", "warning"],
            log=self.tmp / "serve.log", env=self.stack.environ(), cwd=self.stack.base))
        wait_for_http(f"{self.api}/health", self.serve, timeout=90)

    def stop(self) -> None:
        if self.serve is not None:
            self.serve.terminate(10)
        if self.carts is not None:
            self.carts.close()
        self.stack.stop()

    def database_url(self) -> str:
        return (self.stack.base / "secrets" / "shop-database-url").read_text().strip()

    def url(self, service: str) -> str:
        """The service's address: the port nginx listens on for it."""
        return f"http://127.0.0.1:{self.stack.ports[service]}"

    def send(self, service: str) -> Send:
        if service == "orders":
            assert self.carts is not None
            return checkout_request(self.carts)
        return catalog_request

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - argv built here
            [*self.opsplane, "-c", str(self.stack.inventory_path), *args], capture_output=True, text=True,
            timeout=timeout, env=self.stack.environ(), cwd=self.stack.base, check=False)


def run_canary(platform: Platform, bad: BadRelease, *, rate: float, clients: int, initial_percent: float,
               warm_up: float, seed: int) -> SafetyRun:
    """One canary deploy of `bad` under `rate` requests a second to its service through nginx."""
    service = bad.service
    with Load(platform.url(service), platform.send(service), rate=rate, clients=clients, seed=seed) as load, \
            LoadAverage() as loadavg:
        time.sleep(warm_up)
        platform.progress(f"opsplane deploy {service} {bad.release} --strategy canary "
                          f"--initial-percent {initial_percent:g} under {rate:g} requests/s")
        began = time.time()
        done = platform.cli("deploy", service, bad.release, "--strategy", "canary", "--initial-percent",
                            f"{initial_percent:g}", "--auto-promote", "--json")
        deploy = _deploy_json(done)
        if deploy.get("state") == "paused":
            platform.cli("deploy", "abort", str(deploy["id"]))
            _wait_ended(platform, int(deploy["id"]))
        time.sleep(SETTLE_SECONDS)
    answers = [a for a in load.answers if a.sent >= began]
    events = _deploy_events(platform, int(deploy["id"]))
    run = _summarise(bad, deploy, events, answers, began, load)
    run.load_average = loadavg.readings
    run.flagger = flagger_in_run(platform, service, stable="v1", canary=bad.release, answers=answers)
    if deploy.get("incident"):
        platform.cli("incident", "resolve", str(deploy["incident"]), "-m", "benchmark run")
    return run


def _deploy_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(done.stdout)
        return data
    except json.JSONDecodeError:
        raise RuntimeError(f"opsplane deploy exited {done.returncode} without its JSON: "
                           f"{(done.stderr or done.stdout)[-800:]}") from None


def _wait_ended(platform: Platform, deploy_id: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = json.loads(platform.cli("deploy", "status", str(deploy_id), "--json").stdout or "{}")
        if shown.get("state") in ("succeeded", "rolled_back", "failed", "aborted"):
            return
        time.sleep(1)


def _deploy_events(platform: Platform, deploy_id: int) -> list[tuple[float, str, dict[str, Any]]]:
    """(wall time, kind, details) of the deploy's events, oldest first."""
    from opsplane.events import service as events
    from opsplane.store import Store

    store = Store.open(platform.stack.store_url)
    try:
        with store.session() as session:
            rows = events.get_all(session, kind="deploy.*", limit=10_000)
            found = [(row.ts.replace(tzinfo=row.ts.tzinfo or UTC).timestamp(), row.kind, dict(row.details))
                     for row in rows if row.target == f"deploy:{deploy_id}"]
    finally:
        store.close()
    return sorted(found, key=lambda e: e[0])


def _summarise(bad: BadRelease, deploy: dict[str, Any], events: Sequence[tuple[float, str, dict[str, Any]]],
               answers: Sequence[Answer], began: float, load: Load) -> SafetyRun:
    canary = [a for a in answers if a.version == bad.release]
    stable = [a for a in answers if a.version not in (None, bad.release)]
    last = max((a.received for a in canary), default=None)
    first = min((a.received for a in canary), default=None)
    during = [a for a in answers if first is not None and last is not None and first <= a.received <= last]

    def at(kind: str) -> float | None:
        return next((ts - began for ts, k, _ in events if k == kind), None)

    verdicts = [d for _, k, d in events if k == "deploy.verdict"]
    ended = [ts for ts, k, _ in events if k in ("deploy.rolled_back", "deploy.succeeded", "deploy.failed")]
    seconds = (answers[-1].sent - answers[0].sent) if len(answers) > 1 else 0.0
    return SafetyRun(
        service=bad.service, release=bad.release, state=str(deploy.get("state")),
        reason=str(deploy.get("reason") or ""),
        time_to_safety=None if last is None or deploy.get("state") != "rolled_back" else last - began,
        first_canary_answer=None if first is None else first - began,
        rollback_decided=at("deploy.rolling_back"),
        deploy_ended=ended[0] - began if ended else None,
        answers=len(answers), canary_answers=len(canary),
        canary_errors=sum(a.status >= 500 for a in canary),
        stable_errors=sum(a.status >= 500 for a in stable),
        no_answer=sum(a.status == 0 for a in answers), rate=len(answers) / seconds if seconds else 0.0,
        canary_share=len([a for a in during if a.version == bad.release]) / len(during) if during else 0.0,
        verdict=str(verdicts[-1].get("explanation", "")) if verdicts else "no verdict recorded")


# --- Flagger on the same samples --------------------------------------------------------------


def scraped(platform: Platform, service: str, start: float, end: float) -> Any:
    """The request counters of `service` that `serve` scraped between `start` and `end`, raw, as
    a sample store of their own (every target's samples at one time make one scrape)."""
    from opsplane.metrics.store import SampleStore

    span = max(1, int(end - start + 2 * SCRAPE_SECONDS))
    expr = ('{__name__=~"http_requests_total|http_request_duration_seconds_sum|'
            f'http_request_duration_seconds_bucket",service="{service}"}}[{span}s]')
    answer = httpx.get(f"{platform.api}/api/v1/query", params={"query": expr, "time": end + SCRAPE_SECONDS},
                       headers={"Authorization": f"Bearer {platform.token}"}, timeout=60, trust_env=False)
    answer.raise_for_status()
    scrapes: dict[tuple[str, float], list[tuple[tuple[tuple[str, str], ...], float]]] = {}
    for series in answer.json()["data"]["result"]:
        labels = tuple(sorted(series["metric"].items()))
        target = series["metric"].get("instance", "")
        for at, value in series["values"]:
            scrapes.setdefault((target, float(at)), []).append((labels, float(value)))
    store = SampleStore(window=86_400)
    for (target, at), samples in sorted(scrapes.items(), key=lambda item: item[0][1]):
        store.append_scrape(target, at, samples)
    return store


def flagger_in_run(platform: Platform, service: str, *, stable: str, canary: str,
                   answers: Sequence[Answer]) -> dict[str, Any]:
    """What Flagger's analysis (one-minute checks of the canary alone, threshold 5) had to go on
    during the canary's life, from the same samples; and the canary's life as one check."""
    served = [a.received for a in answers if a.version == canary]
    if not served:
        return {"checks": 0, "outcome": "no canary answers"}
    start, end = min(served) - SCRAPE_SECONDS, max(served) + SCRAPE_SECONDS
    store = scraped(platform, service, start - FLAGGER_INTERVAL, end)
    minutes = intervals(store, service, [stable, canary], start=start, end=end, interval=FLAGGER_INTERVAL)
    verdict = flagger_style(minutes[canary], threshold=FLAGGER_THRESHOLD)
    fine = intervals(store, service, [stable, canary], start=start, end=end, interval=SCRAPE_SECONDS)
    whole = combine(fine[canary]) if fine[canary] else None
    life = flagger_style([whole], threshold=1) if whole is not None else None
    return {
        "canary_seconds": max(served) - min(served),
        "checks": len(minutes[canary]),
        "failed_checks": verdict.failed_checks,
        "outcome": "rolled back" if verdict.outcome == "fail" else "not rolled back within the run",
        "whole_life": None if whole is None or life is None else {
            "requests": whole.requests, "errors": whole.errors,
            "error_ratio": whole.errors / whole.requests if whole.requests else None,
            "p99": life.checks[0].p99, "check": life.checks[0].reason,
            "would_fail": life.checks[0].failed},
        "stable_requests": sum(i.requests for i in fine[stable]),
    }


def as_dicts(runs: Sequence[SafetyRun]) -> list[dict[str, Any]]:
    return [asdict(r) for r in runs]


def opsplane_argv(root: Path) -> list[str]:
    binary = root / ".venv" / "bin" / "opsplane"
    return [str(binary)] if binary.exists() else [sys.executable, "-m", "opsplane"]
