"""A small real platform for deploy tests: the shop's services under the process runtime on
SQLite, fronted by a real proxy, `opsplane serve` as a subprocess (so it can be killed with
SIGKILL), and shoppers sending requests through the proxy from a thread of the test.

The shoppers run in the test rather than as a runtime service so that every answer they get
is kept (its time, status and the release that gave it): what users saw during a deploy is
then asserted directly, not inferred from the platform's own figures. They use the shop's own
lean HTTP client, so a hundred requests a second cost the test a few percent of a core.

    with deploy_platform(tmp_path, Setup(canary={...})) as platform:
        with platform.browsing(rps=120) as load:
            deploy_id = platform.deploy("catalog", "v2")
            row = platform.wait_for_state(deploy_id, "succeeded", timeout=150)
            assert load.failures() == [] and {a.version for a in load.answers()} <= {"v1", "v2"}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.drivers.sandbox.ports import free_port
from opsplane.store import Store
from shop.httpclient import HttpClientError, Origin
from tests.support.polling import wait_for

SHOP = (sys.executable, "-m", "shop")
PROXIED = ("catalog", "orders")  # the services a deploy test may deploy; payments answers orders directly


@dataclass(frozen=True)
class Setup:
    """What a platform runs and how its deploys behave.

    `services` are the shop services behind the proxy (payments runs too, on its own port,
    when orders is among them); `canary`, `analysis`, `windows` and `deploy` go into the
    inventory's `deploy:` section as given (`deploy` adds or replaces any other field);
    `shop_env` is added to every shop service's environment; `scrape_interval` is the
    inventory's default interval of checks and scrapes."""

    engine: str = "nginx"
    services: tuple[str, ...] = ("catalog",)
    instances: int = 1
    canary: Mapping[str, Any] = field(default_factory=lambda: {
        "steps": [50, 100], "step_duration": "24s", "interval": "3s"})
    # Two processes on a shared 2-core machine differ in latency by more than the default 20 %
    # at times for no reason of their own, which leaves a good canary's step inconclusive; half
    # as slow again still fails a release 300 ms slower than one answering in 10 ms.
    analysis: Mapping[str, Any] = field(default_factory=lambda: {"latency_margin": 0.5})
    windows: Mapping[str, Any] = field(default_factory=dict)
    deploy: Mapping[str, Any] = field(default_factory=dict)
    shop_env: Mapping[str, str] = field(default_factory=dict)
    scrape_interval: str = "2s"

    def __post_init__(self) -> None:
        unknown = set(self.services) - set(PROXIED)
        if unknown:
            raise ValueError(f"services {sorted(unknown)}: expected some of {PROXIED}")
        if self.engine not in ("nginx", "haproxy"):
            raise ValueError(f"engine {self.engine!r}: expected nginx or haproxy")


def inventory(setup: Setup, base: Path, ports: Mapping[str, int]) -> dict[str, Any]:
    """The platform's inventory as data: each service with its health check, metrics and `run`
    section (release v1), the proxy, the deploy settings."""
    running = [*setup.services, *(["payments"] if "orders" in setup.services else [])]
    env = {"SHOP_DATA_DIR": str(base / "shop-data"), "SHOP_VERSION": "{version}", "SHOP_SEED": "7",
           **{f"SHOP_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in running},
           **setup.shop_env}

    def service(name: str) -> dict[str, Any]:
        found: dict[str, Any] = {
            "kind": "api", "port": ports[name], "metrics_path": "/metrics",
            "depends_on": ["payments"] if name == "orders" else [],
            "checks": [{"name": "health", "type": "http", "path": "/health",
                        "json": {"path": "status", "op": "in", "value": ["ok", "degraded"]}}],
            "run": {"argv": [*SHOP, name, "--host", "127.0.0.1", "--port", "{port}"], "version": "v1",
                    "instances": setup.instances if name in setup.services else 1, "env": env,
                    # a release that exits at every start is given up on within seconds, so a
                    # deploy of it fails then rather than at its health timeout
                    "backoff": {"initial": "1s", "max": "10s"}, "max_restarts": 2, "restart_window": "1m",
                    "stop_timeout": "5s"},
        }
        if name in setup.services:
            found["proxy"] = "edge"
        return found

    deploy: dict[str, Any] = {
        "strategy": "canary",
        # short enough that a release that never comes up is rolled back quickly; v2-crash, which
        # exits 3 s after it began to answer, is still caught before it gets requests
        "health_timeout": "20s",
        "healthy_for": "5s",
        "canary": dict(setup.canary),
        "windows": dict(setup.windows),
        "services": {name: {"releases_command": list(SHOP) + ["releases"], "irreversible": ["v2-migration"]}
                     for name in setup.services},
        **({"analysis": dict(setup.analysis)} if setup.analysis else {}),
        **setup.deploy,
    }
    return {
        "platform": {"name": "deploy-it", "default_environment": "development"},
        "environments": {"development": {"host": "127.0.0.1"}},
        "defaults": {"interval": setup.scrape_interval, "timeout": "2s"},
        "runtime": {"driver": "process", "state_dir": "run"},
        "services": {name: service(name) for name in running},
        "proxies": {"edge": {"engine": setup.engine, "port": ports["edge"],
                             "checks": [{"type": "http", "path": "/health"}]}},
        "deploy": deploy,
    }


@dataclass(frozen=True)
class Answer:
    """One request a shopper sent: when its answer came (monotonic seconds), to which route,
    and what came back: the status and the release that answered (X-Version), or the error."""

    at: float
    route: str
    status: int | None
    version: str | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """No answer, or a 5xx: what a shopper counts as the shop failing them."""
        return self.status is None or self.status >= 500


Shopper = Callable[[Origin], Awaitable[Answer | None]]  # None: it sent nothing (every shopper is busy)


class Load:
    """Requests through the proxy at a steady rate from a thread of the test: each arrival runs
    one `shopper` step, or is dropped (and counted) when `limit` steps are still running."""

    def __init__(self, url: str, rps: float, shopper: Shopper, *, limit: int = 64) -> None:
        self.url, self.rps, self.shopper, self.limit = url, rps, shopper, limit
        self.dropped = 0
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True,
                                        name=f"load {url}")

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def answers(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self._answers if since <= a.at < until]

    def versions(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """How many answers each release gave from `since` to `until` (failures left out)."""
        return Counter(a.version or "-" for a in self.answers(since, until) if not a.failed)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [a for a in self.answers(since, until) if a.failed]

    def wait_for_answers(self, count: int, timeout: float = 30.0) -> None:
        """Until at least `count` answers came back since the load began."""
        wait_for(lambda: len(self.answers()) >= count, f"{count} answers through {self.url}", timeout)

    async def _run(self) -> None:
        origin = Origin(self.url, max_connections=self.limit)
        running: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for number in itertools.count():
            if self._stop.is_set():
                break
            delay = start + number / self.rps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(running) >= self.limit:
                self.dropped += 1
                continue
            task = asyncio.create_task(self._one(origin))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running, timeout=15)
        origin.close()

    async def _one(self, origin: Origin) -> None:
        answer = await self.shopper(origin)
        with self._lock:
            if answer is None:
                self.dropped += 1
            else:
                self._answers.append(answer)


async def _request(origin: Origin, method: str, route: str, target: str,
                   body: Any = None) -> tuple[Answer, Any]:
    content = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if content is not None else None
    try:
        got = await origin.request(method, target, content=content, headers=headers, timeout=10)
    except HttpClientError as exc:
        return Answer(time.monotonic(), route, None, None, str(exc)), None
    try:
        data = got.json() if got.content else None
    except ValueError:
        data = None
    version = got.headers.get("x-version")
    return Answer(time.monotonic(), route, got.status_code, version), data


def browser(pages: int = 15) -> Shopper:
    """A shopper reading catalog's product listing, page after page."""
    numbers = itertools.cycle(range(1, pages + 1))

    async def step(origin: Origin) -> Answer | None:
        return (await _request(origin, "GET", "/products", f"/products?page={next(numbers)}"))[0]

    return step


def buyers(count: int = 48, give_up_after: int = 20) -> Shopper:
    """Shoppers at orders: each fills a cart with one product and checks it out, and checks out
    again while the checkout does not complete (a declined card, a failed request), up to
    `give_up_after` tries, then starts a new cart. With most cards declined, orders' traffic
    is mostly checkouts."""
    rng = random.Random(3)
    idle = [{"cart": None, "filled": False, "tries": 0} for _ in range(count)]

    async def step(origin: Origin) -> Answer | None:
        if not idle:
            return None
        shopper = idle.pop()
        try:
            return await _next(origin, shopper)
        finally:
            idle.append(shopper)

    async def _next(origin: Origin, shopper: dict[str, Any]) -> Answer:
        if shopper["cart"] is None:
            answer, data = await _request(origin, "POST", "/carts", "/carts")
            if answer.status == 201 and isinstance(data, dict):
                shopper.update(cart=data["id"], filled=False, tries=0)
            return answer
        if not shopper["filled"]:
            answer, _ = await _request(origin, "POST", "/carts/{cart_id}/items",
                                       f"/carts/{shopper['cart']}/items",
                                       {"product_id": rng.randint(1, 300), "quantity": 1})
            shopper["filled"] = answer.status == 201
            return answer
        answer, _ = await _request(origin, "POST", "/checkout", "/checkout", {"cart_id": shopper["cart"]})
        shopper["tries"] += 1
        if answer.status in (201, 409, 422) or shopper["tries"] >= give_up_after:
            shopper["cart"] = None
        return answer

    return step


class ServeProcess:
    """`opsplane serve` as a process whose output goes to `serve.log` in the platform's directory
    (a pipe nobody reads would stop it once full), across every start of it."""

    def __init__(self, base: Path, inventory_path: Path) -> None:
        self.base, self.inventory_path = base, inventory_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{base}/opsplane.db"}
        self.log = base / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "opsplane", "-c", str(self.inventory_path), "serve", "--port",
                 str(self.port)], cwd=self.base, env=self.env, stdout=output, stderr=subprocess.STDOUT)
        wait_for(self._answers, "serve to answer /health", timeout=60, interval=0.1)

    def _answers(self) -> bool:
        import httpx

        assert self.process is not None and self.process.poll() is None, self.output()[-3000:]
        try:
            return httpx.get(f"{self.url}/health", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, claims left held until their lease runs out."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """SIGTERM, and SIGKILL after 20 s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class DeployPlatform:
    """A running platform and what a deploy test asks of it."""

    def __init__(self, base: Path, setup: Setup) -> None:
        self.base, self.setup = base, setup
        names = [*setup.services, *(["payments"] if "orders" in setup.services else [])]
        self.ports = {name: free_port() for name in (*names, "edge")}
        self.inventory_path = base / "opsplane.yaml"
        self.inventory_path.write_text(yaml.safe_dump(inventory(setup, base, self.ports), sort_keys=False))
        self.serve = ServeProcess(base, self.inventory_path)
        # The store serve makes, made now so that commands run before it starts find one.
        self.store = Store.open(self.serve.env["OPSPLANE_DATABASE_URL"])
        self._loads: list[Load] = []
        self._runtime: Any = None
        self.started = False

    # --- the command and the store ------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment every command gets: OPSPLANE_DATABASE_URL names this platform's store;
        the inventory is passed with -c."""
        return self.serve.env

    def cli(self, *args: str, code: int | None = 0, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`opsplane -c INVENTORY ARGS...` as a person runs it; its exit code must be `code`
        (None: any) and it must print no traceback."""
        ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(self.inventory_path), *args],
                             cwd=self.base, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert code is None or ran.returncode == code, (args, ran.returncode, ran.stdout, ran.stderr)
        assert "Traceback" not in ran.stderr, ran.stderr
        return ran

    def cli_json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self.cli(*args, "--json", code=code).stdout)

    def deploy(self, service: str, version: str, *options: str) -> int:
        """`opsplane deploy SERVICE VERSION OPTIONS --no-wait`: the recorded deploy's id."""
        return int(self.cli_json("deploy", service, version, *options, "--no-wait")["id"])

    def deploy_row(self, deploy_id: int) -> dict[str, Any]:
        """The deploy as `opsplane deploy status ID --json` prints it, read from the store."""
        from opsplane.deploy import service

        with self.store.session() as session:
            return service.as_dict(service.get(session, deploy_id))

    def wait_for_state(self, deploy_id: int, *states: str, timeout: float) -> dict[str, Any]:
        """The deploy once it is in one of `states`; AssertionError naming its state, step and
        reason after `timeout` seconds, or at once when it ends in another final state."""
        from opsplane.deploy.service import FINAL

        def reached() -> dict[str, Any] | None:
            row = self.deploy_row(deploy_id)
            if row["state"] in states:
                return row
            assert row["state"] not in FINAL, f"deploy {deploy_id} ended {row['state']}: {row['reason']}"
            return None

        try:
            found: dict[str, Any] = wait_for(reached, f"deploy {deploy_id} to be {' or '.join(states)}",
                                             timeout=timeout, interval=0.25)
        except AssertionError as exc:
            row = self.deploy_row(deploy_id)
            raise AssertionError(f"{exc}; it is {row['state']} at step {row['step']} "
                                 f"({row['steps'][min(row['step'], len(row['steps']) - 1)]['kind']}): "
                                 f"{row['reason']}") from None
        return found

    def events(self, kind: str | None = None, *, service: str | None = None,
               deploy_id: int | None = None) -> list[dict[str, Any]]:
        """Events oldest first, as `opsplane events --json` has them; those of one deploy with
        `deploy_id`."""
        from opsplane.events.service import get_all

        with self.store.session() as session:
            found = [e.as_dict() for e in get_all(session, kind=kind, service=service, limit=100_000)]
        if deploy_id is not None:
            found = [e for e in found if e["target"] == f"deploy:{deploy_id}"]
        return sorted(found, key=lambda e: e["id"])

    def steps_done(self, deploy_id: int) -> list[dict[str, Any]]:
        """The details of each `deploy.step` event of the deploy, in order."""
        return [e["details"] for e in self.events("deploy.step", deploy_id=deploy_id)]

    def ps(self) -> list[dict[str, Any]]:
        """`opsplane ps --json`."""
        found: list[dict[str, Any]] = self.cli_json("ps")
        return found

    def groups(self) -> dict[str, list[str | None]]:
        """Each group `ps` lists (a service, or a track SERVICE@VERSION) and the release of each
        of its running instances."""
        found: dict[str, list[str | None]] = {}
        for row in self.ps():
            found.setdefault(row["service"], []).append(row["version"] if row["state"] == "running" else None)
        return found

    def releases(self) -> dict[str, str]:
        """What the runtime's `releases.json` records."""
        path = self.base / "run" / "releases.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def instances(self) -> list[InstanceStatus]:
        """What the runtime runs now, asked of its supervisor directly (cheaper than `ps`, for
        polling)."""
        from opsplane.config.loader import load
        from opsplane.drivers.runtime import open_runtime

        if self._runtime is None:
            self._runtime = open_runtime(load(self.inventory_path), base_dir=self.base, environ=self.env)
        return list(self._runtime.status())

    def current_step(self, deploy_id: int) -> tuple[str, bool]:
        """The kind of the deploy's current step, and whether a control plane began it."""
        from opsplane.deploy import service

        with self.store.session() as session:
            row = service.get(session, deploy_id)
            return str(service.current_step(row)["kind"]), row.step_started_at is not None

    def wait_for_step(self, deploy_id: int, kind: str, *, timeout: float) -> None:
        """Until a control plane began the deploy's step of `kind`."""
        wait_for(lambda: self.current_step(deploy_id) == (kind, True),
                 f"deploy {deploy_id} to begin its {kind} step", timeout=timeout, interval=0.05)

    def proxy_url(self, service: str) -> str:
        """Where the proxy serves `service`: the service's own port."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def answering(self, service: str, requests: int = 40) -> Counter[str]:
        """Which releases answer `GET /version` of `service` through the proxy, and how often
        (`-` for a failed request)."""
        import httpx

        found: Counter[str] = Counter()
        with httpx.Client(base_url=self.proxy_url(service), timeout=5, trust_env=False) as client:
            for _ in range(requests):
                try:
                    answer = client.get("/version")
                except httpx.HTTPError:
                    found["-"] += 1
                    continue
                found[answer.headers.get("x-version", "?") if answer.status_code < 500 else "-"] += 1
        return found

    def clear(self, service: str) -> None:
        """Roll back the service's deploy under way, if any, and resolve its open incidents (what
        a responder does once a rollback is over), so that the next deploy's pre-checks pass."""
        from opsplane.deploy import service as deploys
        from opsplane.incidents.tables import IncidentRow

        with self.store.session() as session:
            active = deploys.active_for(session, service)
            active_id = active.id if active is not None else None
        if active_id is not None:
            self.cli("deploy", "abort", str(active_id), code=None)
            self.wait_for_state(active_id, "rolled_back", "aborted", "failed", timeout=90)
        with self.store.session() as session:
            open_ids = list(session.scalars(select(IncidentRow.id).where(
                IncidentRow.service == service, IncidentRow.status != "resolved")))
        for number in open_ids:
            self.cli("incident", "resolve", str(number), "--summary", "Rolled back.")

    def deploy_worker_ran(self) -> datetime | None:
        """When serve's deploy worker last finished a round, from serve's /health."""
        import httpx

        answer = httpx.get(f"{self.serve.url}/health", timeout=5, trust_env=False)
        found = [w for w in answer.json()["workers"] if w["name"] == "deploy"]
        return datetime.fromisoformat(found[0]["last_run"]) if found and found[0].get("last_run") else None

    def wait_for_deploy_rounds(self, after: datetime, seconds: float = 2.0) -> None:
        """Until serve's deploy worker has gone on running rounds for `seconds` after `after`:
        whatever it would do to a deploy by then, it has done."""
        wanted = after + timedelta(seconds=seconds)
        wait_for(lambda: (self.deploy_worker_ran() or after) > wanted,
                 f"the deploy worker's rounds until {wanted:%H:%M:%S}", timeout=30, interval=0.25)

    # --- traffic ------------------------------------------------------------------------

    @contextlib.contextmanager
    def load(self, service: str, rps: float, shopper: Shopper) -> Iterator[Load]:
        """`shopper` at `rps` through the proxy to `service` while the block runs."""
        running = Load(self.proxy_url(service), rps, shopper).start()
        self._loads.append(running)
        try:
            yield running
        finally:
            running.stop()

    def browsing(self, rps: float) -> contextlib.AbstractContextManager[Load]:
        """Shoppers reading catalog's product listing through the proxy."""
        return self.load("catalog", rps, browser())

    def buying(self, rps: float) -> contextlib.AbstractContextManager[Load]:
        """Shoppers checking out at orders through the proxy."""
        return self.load("orders", rps, buyers())

    # --- processes ----------------------------------------------------------------------

    def start(self) -> None:
        """`opsplane up` (the services, then the proxy with routes to them), then serve."""
        self.started = True
        self.cli("up", "--timeout", "60", timeout=120)
        self.serve.start()

    def kill_serve(self) -> None:
        """SIGKILL to serve: no cleanup, claims left held until their lease runs out."""
        self.serve.kill()

    def start_serve(self) -> None:
        self.serve.start()

    def stop(self) -> str:
        """Stop the shoppers, serve, then everything the runtime runs; serve's output."""
        for running in self._loads:
            running.stop()
        self.serve.stop()
        output = self.serve.output()
        if self.started:
            self.cli("down", code=None, timeout=120)
        self.store.close()
        return output


@contextlib.contextmanager
def deploy_platform(base: Path, setup: Setup | None = None, *,
                    start: bool = True) -> Iterator[DeployPlatform]:
    """A platform under `base`, started unless `start` is false (its inventory and store only),
    stopped on the way out; serve's output must then hold no traceback."""
    platform = DeployPlatform(base, setup or Setup())
    try:
        if start:
            platform.start()
        yield platform
    finally:
        output = platform.stop()
        assert "Traceback" not in output, output[-5000:]


def first(items: Iterable[dict[str, Any]], **wanted: Any) -> dict[str, Any] | None:
    """The first of `items` whose fields have the `wanted` values."""
    return next((item for item in items if all(item.get(k) == v for k, v in wanted.items())), None)


def shop_env_for_checkouts() -> dict[str, str]:
    """Payments declines almost every card and never fails on its own: shoppers check out again
    and again, and whatever fails is the release under test."""
    return {"SHOP_PAYMENT_SUCCESS_RATE": "0.05", "SHOP_PAYMENT_ERROR_RATE": "0"}


__all__ = ["Answer", "DeployPlatform", "Load", "Setup", "browser", "buyers", "deploy_platform", "first",
           "inventory", "shop_env_for_checkouts"]
