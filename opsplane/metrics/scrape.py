"""Scraping components' Prometheus endpoints into the sample store, and how each scrape went.

A component with `metrics_path` in the inventory is fetched at `{base URL}{metrics_path}` on the
inventory's default interval. Given a `SampleStore`, every sample of every scrape is kept,
labelled as Prometheus labels them (`metrics/ingest.py`), for PromQL: alert rules,
`opsplane query` and the dashboard's charts (`web/service_charts.py`), which compute request
rates, error ratios and latency percentiles from it rather than from a store of their own.
A page that cannot be read is a CRITICAL scrape state (with `up` 0), a page without
`http_requests_total` an UNKNOWN one (it has no request rate to chart or alert on), and a
target that reports more series than its limit a WARNING; `on_change` hears of each change of
state.

The pieces are split along the usual line: `scrape_targets` and `request_counts` are pure;
`MetricsScraper` does the I/O through a `Fetch` function (HTTP by default), so a failing
target becomes a `ScrapeStatus` with a reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
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
    from opsplane.metrics.ingest import SeriesCache
    from opsplane.metrics.store import SampleStore

REQUESTS = "http_requests_total"
STATUS_LABELS = ("code", "status", "status_code")
MAX_BODY = 8 * 1024 * 1024

# fetch(url, timeout) -> (HTTP status, body text); raises for a transport failure.
Fetch = Callable[[str, float], Awaitable[tuple[int, str]]]


class MetricsError(Exception):
    """An answer that is not usable metrics text (reported as a status, never raised above)."""


# --- what to scrape (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    """One component's metrics endpoint. `problem` is set when the inventory gives no address."""

    component: str
    url: str
    interval: float
    timeout: float
    problem: str | None = None


def scrape_targets(inventory: Inventory, env: str | None = None) -> list[ScrapeTarget]:
    """Every component with `metrics_path`, its endpoint resolved for environment `env`."""
    env_name = environment_name(inventory, env)
    interval, timeout = inventory.defaults.interval, inventory.defaults.timeout
    found = []
    for _, name, component in inventory.components():
        if not component.metrics_path:
            continue
        base = _base_url(inventory, env_name, component)
        if base is None:
            found.append(ScrapeTarget(name, "", interval, timeout,
                                      problem="has metrics_path but neither a url nor a port"))
            continue
        path = "/" + component.metrics_path.lstrip("/")
        found.append(ScrapeTarget(name, base.rstrip("/") + path, interval, timeout))
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
    host = host or "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


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
        self.targets = list(targets)
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

    @property
    def components(self) -> set[str]:
        """The components that are scraped."""
        return {t.component for t in self.targets}

    def status(self, component: str) -> ScrapeStatus | None:
        """The last scrape's outcome; None before the first or when the component is not scraped."""
        return self._status.get(component)

    async def scrape(self, target: ScrapeTarget) -> ScrapeStatus:
        """Fetch `target` once, keep its samples in the store (if there is one), and say how
        it went."""
        at, started = self.clock.now(), time.perf_counter()
        status, text = await self._scrape(target)
        if self.store is not None and not target.problem:
            # Parsing and storing a page is CPU work: off the event loop, under the store's lock.
            status = await asyncio.to_thread(self._ingest, target, status, text, at.timestamp(),
                                             time.perf_counter() - started)
        before = self._status.get(target.component)
        self._status[target.component] = status
        if self._on_change is not None and (before is None or before.state is not status.state):
            self._on_change(target, status)
        return status

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
        from opsplane.metrics.ingest import SeriesCache, ingest, ingest_failure

        assert self.store is not None
        if self._series_cache is None:
            self._series_cache = SeriesCache(2 * self.store.series_limit)
        with self.lock:
            if text is None:
                ingest_failure(self.store, target, self.env, at=at, duration=took)
                return status
            try:
                done = ingest(self.store, target, self.env, text, at=at, duration=took,
                              cache=self._series_cache)
            except ExpositionError as exc:
                ingest_failure(self.store, target, self.env, at=at, duration=took)
                return ScrapeStatus(State.CRITICAL, f"unreadable metrics: {exc}", status.at)
        if done.over_limit:
            return ScrapeStatus(
                State.WARNING, f"{done.refused_series} new series refused: over the limit of "
                f"{self.store.series_limit} series per target", status.at)
        return status

    # --- running ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Scrape every target on its interval until cancelled."""
        loops = [asyncio.ensure_future(self._every(t)) for t in self.targets]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _every(self, target: ScrapeTarget) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + phase("metrics:" + target.component, target.interval)
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
