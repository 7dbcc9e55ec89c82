"""Scraping components' Prometheus endpoints into the sample store, and how each scrape went.

A component with `metrics_path` in the inventory is fetched at `{base URL}{metrics_path}` on the
inventory's default interval. A component that opsplane runs behind a proxy (`run` and `proxy`)
is not fetched at its address, which is the proxy's and would answer from any one instance:
each of its running instances is a target of its own, found in the runtime's state as
Prometheus's service discovery finds pods, and the series of one that stops go stale.

Given a `SampleStore`, every sample of every scrape is kept, labelled as Prometheus labels
them (`metrics/ingest.py`), for PromQL: alert rules, `opsplane query` and the dashboard's
charts (`web/service_charts.py`), which compute request rates, error ratios and latency
percentiles from it rather than from a store of their own. A page that cannot be read is a
CRITICAL scrape state (with `up` 0), a page without `http_requests_total` an UNKNOWN one (it
has no request rate to chart or alert on), and a target that reports more series than its
limit a WARNING; `on_change` hears of each change of state.

The pieces are split along the usual line: `scrape_targets`, `instance_targets` and
`request_counts` are pure; `MetricsScraper` does the I/O through a `Fetch` function (HTTP by
default), so a failing target becomes a `ScrapeStatus` with a reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsplane.clock import Clock, SystemClock
from opsplane.config.models import Component, Inventory
from opsplane.drivers.probes.base import describe_failure
from opsplane.health.models import State
from opsplane.health.scheduler import phase
from opsplane.health.targets import environment_name

if TYPE_CHECKING:
    from opsplane.drivers.runtime.base import InstanceStatus
    from opsplane.metrics.ingest import SeriesCache
    from opsplane.metrics.store import SampleStore

REQUESTS = "http_requests_total"
STATUS_LABELS = ("code", "status", "status_code")
MAX_BODY = 8 * 1024 * 1024
# InstanceState.RUNNING: the runtime's driver is not imported by serve unless it runs services.
RUNNING = "running"
TRACK_SEPARATOR = "@"  # a release run beside the service's own group: "catalog@v2"

# fetch(url, timeout) -> (HTTP status, body text); raises for a transport failure.
Fetch = Callable[[str, float], Awaitable[tuple[int, str]]]


class MetricsError(Exception):
    """An answer that is not usable metrics text (reported as a status, never raised above)."""


# --- what to scrape (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    """One metrics endpoint. `problem` is set when the inventory gives no address.

    A component scraped at its own address is one target, keyed by its name. A component
    scraped per instance (`scraped_per_instance`) is listed by `scrape_targets` with
    `per_instance` set and no URL: it is never fetched itself but stands for its running
    instances, each a target of its own (`instance_targets`) keyed by the runtime's name for
    it (`instance`: "catalog@v2.0"). Their `component` is the service's name without the
    release ("catalog"): their `job` and `service` label.
    """

    component: str
    url: str
    interval: float
    timeout: float
    problem: str | None = None
    instance: str | None = None
    per_instance: bool = False

    @property
    def key(self) -> str:
        """What the scrape state and the store know this target by: the instance, else the
        component."""
        return self.instance or self.component


def scraped_per_instance(component: Component) -> bool:
    """Whether `component` is scraped at each of its instances rather than at its address: it
    has `metrics_path`, opsplane runs it (`run`) and a proxy fronts it (`proxy`)."""
    return bool(component.metrics_path and component.run and component.proxy)


def scrape_targets(inventory: Inventory, env: str | None = None) -> list[ScrapeTarget]:
    """Every component with `metrics_path`, its endpoint resolved for environment `env`; a
    component scraped per instance comes as a `per_instance` target without a URL."""
    env_name = environment_name(inventory, env)
    interval, timeout = inventory.defaults.interval, inventory.defaults.timeout
    found = []
    for _, name, component in inventory.components():
        if not component.metrics_path:
            continue
        if scraped_per_instance(component):
            found.append(ScrapeTarget(name, "", interval, timeout, per_instance=True))
            continue
        base = _base_url(inventory, env_name, component)
        if base is None:
            found.append(ScrapeTarget(name, "", interval, timeout,
                                      problem="has metrics_path but neither a url nor a port"))
            continue
        path = "/" + component.metrics_path.lstrip("/")
        found.append(ScrapeTarget(name, base.rstrip("/") + path, interval, timeout))
    return found


def instance_targets(inventory: Inventory, instances: Iterable[InstanceStatus]) -> list[ScrapeTarget]:
    """A target for each running instance, with a port, of a component scraped per instance,
    in the order of `instances` (the runtime's state): its own group's ("catalog.1") and a
    release's run beside it ("catalog@v2.0", counted as catalog). Instances of other services,
    starting, backing off or stopped, are left out: a target lives while its instance runs.
    The instance is fetched on the host the runtime runs it on (the component's `host`, else
    127.0.0.1) at the component's `metrics_path`."""
    per_instance = {name: component for _, name, component in inventory.components()
                    if scraped_per_instance(component)}
    interval, timeout = inventory.defaults.interval, inventory.defaults.timeout
    found = []
    for status in instances:
        service = status.service.partition(TRACK_SEPARATOR)[0]
        component = per_instance.get(service)
        if component is None or status.state != RUNNING or status.port is None:
            continue
        host = component.host or "127.0.0.1"
        path = "/" + (component.metrics_path or "").lstrip("/")
        found.append(ScrapeTarget(service, f"http://{_url_host(host)}:{status.port}{path}", interval,
                                  timeout, instance=status.name))
    return found


def _base_url(inventory: Inventory, env: str, component: Component) -> str | None:
    override = component.environments.get(env)
    url = (override.url if override else None) or component.url
    if url:
        return url
    port = (override.port if override else None) or component.port
    if port is None:
        return None
    host = (override.host if override else None) or component.host or inventory.environments[env].host
    return f"http://{_url_host(host or '127.0.0.1')}:{port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- what an answer says (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class RequestCounts:
    """Sum of a component's `http_requests_total` series, and the part with a 5xx status."""

    total: float
    server_errors: float


def request_counts(text: str) -> RequestCounts | None:
    """The request counters in Prometheus text `text`; None when it has no `http_requests_total`.

    Raises MetricsError when those lines do not parse.
    """
    from prometheus_client.parser import text_string_to_metric_families

    # Only the lines of the one metric are parsed: exporters often expose thousands of series.
    lines = [line for line in text.splitlines()
             if line.startswith(REQUESTS) and line[len(REQUESTS):len(REQUESTS) + 1] in ("{", " ")]
    if not lines:
        return None
    total = errors = 0.0
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for sample in family.samples:
                if sample.name != REQUESTS:
                    continue
                total += sample.value
                code = next((sample.labels[k] for k in STATUS_LABELS if k in sample.labels), "")
                if code.startswith("5"):
                    errors += sample.value
    except ValueError as exc:
        raise MetricsError(f"{REQUESTS} does not parse: {exc}") from None
    return RequestCounts(total, errors)


# --- state kept while serving ---------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeStatus:
    """How the last scrape of a component went: OK, or a state and a reason a person reads."""

    state: State
    reason: str
    at: datetime


class MetricsScraper:
    """Scrapes every target on its interval into the store, and keeps each target's last state.

    `targets` are those of `scrape_targets`; the instances of the components among them
    scraped per instance are given to `replace_instances` as the runtime reports them.
    `fetch` is the HTTP boundary; the default is a plain GET that never follows redirects and
    ignores proxy settings from the environment.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        clock: Clock | None = None,
        fetch: Fetch | None = None,
        store: SampleStore | None = None,
        env: str = "production",
        on_change: Callable[[ScrapeTarget, ScrapeStatus], None] | None = None,
    ) -> None:
        self._fixed = [t for t in targets if not t.per_instance]
        # The components scraped at each of their instances, and those instances' targets now.
        self.per_instance = {t.component for t in targets if t.per_instance}
        self._instances: dict[str, ScrapeTarget] = {}
        # With a store, every sample of every scrape is kept for PromQL (alert rules,
        # `opsplane query`), labelled with job, instance, service and env.
        self.store = store
        self.lock = threading.Lock()  # the store is written by scrapes, read by rules and queries
        self._series_cache: SeriesCache | None = None
        self.env = env
        self._on_change = on_change
        self.clock = clock or SystemClock()
        self._fetch = fetch
        self._http: HttpFetch | None = None
        self._status: dict[str, ScrapeStatus] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._failed: asyncio.Future[None] | None = None  # set while run_forever runs

    @property
    def targets(self) -> list[ScrapeTarget]:
        """What is fetched now: the components scraped at their address, then the running
        instances of those scraped per instance."""
        return [*self._fixed, *self._instances.values()]

    @property
    def components(self) -> set[str]:
        """The components that are scraped now (one scraped per instance: while one runs)."""
        return {t.component for t in self.targets}

    def status(self, name: str) -> ScrapeStatus | None:
        """The last scrape's outcome of target `name` (a component, or an instance such as
        "catalog@v2.0"); for a component scraped per instance, the worst of its instances',
        its reason naming the instance. None before the first scrape, or when nothing is
        scraped by that name."""
        found = self._status.get(name)
        if found is not None or name not in self.per_instance:
            return found
        return worst_instance_status({t.key: self._status.get(t.key) for t in self._instances.values()
                                      if t.component == name})

    async def scrape(self, target: ScrapeTarget) -> ScrapeStatus:
        """Fetch `target` once, keep its samples in the store (if there is one), and say how
        it went. The scrape of an instance that stopped meanwhile is neither kept nor counted."""
        at, started = self.clock.now(), time.perf_counter()
        status, text = await self._scrape(target)
        if self.store is not None and not target.problem:
            # Parsing and storing a page is CPU work: off the event loop, under the store's lock.
            status = await asyncio.to_thread(self._ingest, target, status, text, at.timestamp(),
                                             time.perf_counter() - started)
        if not self._current(target):
            return status
        before = self._status.get(target.key)
        self._status[target.key] = status
        if self._on_change is not None and (before is None or before.state is not status.state):
            self._on_change(target, status)
        return status

    def _current(self, target: ScrapeTarget) -> bool:
        """False for an instance's target that was replaced or removed since."""
        return target.instance is None or self._instances.get(target.key) == target

    async def _scrape(self, target: ScrapeTarget) -> tuple[ScrapeStatus, str | None]:
        if target.problem:
            return ScrapeStatus(State.UNKNOWN, target.problem, self.clock.now()), None
        fetch = self._fetch or self._default_fetch()
        try:
            async with asyncio.timeout(target.timeout):
                code, text = await fetch(target.url, target.timeout)
            if code != 200:
                raise MetricsError(f"HTTP {code} from {target.url}")
            counts = request_counts(text)
        except TimeoutError:
            return ScrapeStatus(State.CRITICAL, f"no answer within {target.timeout:g} s",
                                self.clock.now()), None
        except MetricsError as exc:
            return ScrapeStatus(State.CRITICAL, str(exc), self.clock.now()), None
        except Exception as exc:  # noqa: BLE001 - the boundary: a target's failure is a status
            state, reason = describe_failure(_innermost_os_error(exc))
            return ScrapeStatus(state, reason, self.clock.now()), None
        if counts is None:
            return ScrapeStatus(State.UNKNOWN, f"exposes no {REQUESTS}", self.clock.now()), text
        return ScrapeStatus(State.OK, f"{counts.total:g} requests counted", self.clock.now()), text

    def _ingest(self, target: ScrapeTarget, status: ScrapeStatus, text: str | None, at: float,
                took: float) -> ScrapeStatus:
        from opsplane.metrics.exposition import ExpositionError
        from opsplane.metrics.ingest import ingest, ingest_failure

        assert self.store is not None
        cache = self._cache()
        with self.lock:
            # Under the lock that `_retire` takes too: an instance's series, once marked stale,
            # are not brought back by a scrape that was under way when it stopped.
            if not self._current(target):
                return status
            if text is None:
                ingest_failure(self.store, target, self.env, at=at, duration=took)
                return status
            try:
                done = ingest(self.store, target, self.env, text, at=at, duration=took, cache=cache)
            except ExpositionError as exc:
                ingest_failure(self.store, target, self.env, at=at, duration=took)
                return ScrapeStatus(State.CRITICAL, f"unreadable metrics: {exc}", status.at)
        if done.over_limit:
            return ScrapeStatus(
                State.WARNING, f"{done.refused_series} new series refused: over the limit of "
                f"{self.store.series_limit} series per target", status.at)
        return status

    def _cache(self) -> SeriesCache:
        from opsplane.metrics.ingest import SeriesCache

        assert self.store is not None
        if self._series_cache is None:
            self._series_cache = SeriesCache(2 * self.store.series_limit)
        return self._series_cache

    # --- instances found by the runtime -------------------------------------------------

    async def replace_instances(self, found: Sequence[ScrapeTarget]) -> list[ScrapeTarget]:
        """Scrape exactly the instance targets `found` from now on (`instance_targets` of the
        runtime's latest state). An instance no longer found, or found at another address,
        stops being scraped, and every series it reported gets a stale marker now, as
        Prometheus marks a target that service discovery no longer lists; a new one is
        scraped from its next slot. Returns the targets that went."""
        wanted = {t.key: t for t in found}
        gone = [t for key, t in self._instances.items() if wanted.get(key) != t]
        for target in gone:
            del self._instances[target.key]
            self._status.pop(target.key, None)
            loop = self._loops.pop(target.key, None)
            if loop is not None:
                loop.cancel()
        if gone and self.store is not None:
            # Before a replacement under the same key is scraped: its store target is the same.
            await asyncio.to_thread(self._retire, gone, self.clock.now().timestamp())
        for key, target in wanted.items():
            if key not in self._instances:
                self._instances[key] = target
                if self._failed is not None:
                    self._start(target)
        return gone

    def _retire(self, gone: Sequence[ScrapeTarget], at: float) -> None:
        assert self.store is not None
        cache = self._cache()
        with self.lock:
            for target in gone:
                self.store.mark_target_gone(target.key, at)
                cache.forget(target.key)

    # --- running ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Scrape every target on its interval until cancelled, and the instances that
        `replace_instances` adds meanwhile; raises what a target's loop failed with."""
        self._failed = asyncio.get_running_loop().create_future()
        try:
            for target in self.targets:
                self._start(target)
            await self._failed
        finally:
            self._failed = None
            loops = list(self._loops.values())
            self._loops.clear()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def _start(self, target: ScrapeTarget) -> None:
        loop = asyncio.get_running_loop().create_task(self._every(target), name=f"scrape:{target.key}")
        self._loops[target.key] = loop
        loop.add_done_callback(self._loop_ended)

    def _loop_ended(self, loop: asyncio.Task[None]) -> None:
        if loop.cancelled() or self._failed is None or self._failed.done():
            return
        exc = loop.exception()
        self._failed.set_exception(exc or RuntimeError(f"{loop.get_name()} ended"))

    async def _every(self, target: ScrapeTarget) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + phase("metrics:" + target.key, target.interval)
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self.scrape(target)
            due += target.interval
            if due < loop.time():  # a slow scrape: skip the slots it overran
                due += math.ceil((loop.time() - due) / target.interval) * target.interval

    def locked_source(self) -> LockedSource | None:
        """The store as a PromQL `SeriesSource` that is safe to read from any thread."""
        return LockedSource(self.store, self.lock) if self.store is not None else None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _default_fetch(self) -> Fetch:
        if self._http is None:
            self._http = HttpFetch()
        return self._http


def worst_instance_status(statuses: dict[str, ScrapeStatus | None]) -> ScrapeStatus | None:
    """The worst of the instances' last scrapes (by instance name: status), its reason naming
    the instance ("catalog.1: connection refused"); None when none was scraped yet."""
    scraped = [(name, status) for name, status in statuses.items() if status is not None]
    if not scraped:
        return None
    name, worst = max(scraped, key=lambda item: item[1].state.severity)
    return ScrapeStatus(worst.state, f"{name}: {worst.reason}", worst.at)


class LockedSource:
    """A `SeriesSource` whose every `select` runs to the end under the store's lock, so an
    evaluation in one thread never sees a scrape half-written by another. The store lends its
    sample columns with the window selected in them; later scrapes only append to those
    columns, so what was selected stays as it was while the evaluation reads it."""

    def __init__(self, store: SampleStore, lock: threading.Lock) -> None:
        self._store = store
        self._lock = lock

    def select(self, matchers: Any, start: float, end: float) -> list[tuple[Any, Any]]:
        with self._lock:
            return list(self._store.select(matchers, start, end))


class HttpFetch:
    """GET over HTTP(S) with httpx, imported only when some component is scraped; reads at
    most MAX_BODY bytes."""

    def __init__(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                         headers={"Accept": "text/plain"})

    async def __call__(self, url: str, timeout: float) -> tuple[int, str]:
        async with self._client.stream("GET", url, timeout=timeout) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise MetricsError(f"metrics from {url} exceed {MAX_BODY // (1024 * 1024)} MiB")
            return response.status_code, _decode(bytes(body), response)

    async def close(self) -> None:
        await self._client.aclose()


def _innermost_os_error(exc: BaseException) -> BaseException:
    """The deepest OSError behind `exc` (HTTP clients wrap 'connection refused' twice), or `exc`."""
    found, seen = exc, set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _decode(body: bytes, response: Any) -> str:
    return body.decode(response.encoding or "utf-8", errors="replace")
