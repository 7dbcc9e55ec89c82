"""Each service's Prometheus metrics on a registry of its own, and the one-minute error window
that /health reports.

Metric children are looked up once per label set and kept, so recording a request costs two
dictionary look-ups and two increments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `_created` series double the scrape size and nobody alerts on them.
disable_created_metrics()

# 0.15 and 0.3 are the latency SLOs' thresholds (gateway 150 ms, content 300 ms, docs/slo.md): an
# SLO counts the requests in the bucket at its threshold, so the threshold must be a boundary.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.5, 1.0, 2.5, 5.0,
                   10.0)


class ShopMetrics:
    """The generic metrics every service exposes; business counters are added by the service."""

    def __init__(self, service: str, version: str) -> None:
        self.service = service
        self.version = version
        self.registry = CollectorRegistry(auto_describe=True)
        # `version` (the release) on the request series lets a deploy compare releases
        # answering side by side, series by series.
        self._requests = Counter(
            "http_requests", "HTTP requests answered, by route template, status code and release.",
            ["service", "route", "method", "status", "version"], registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route template and release.",
            ["service", "route", "method", "version"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        Gauge("build_info", "The running build: always 1, labelled with the version.",
              ["service", "version"], registry=self.registry).labels(service, version).set(1)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(self.service, route, method, str(status), self.version),
                self._duration.labels(self.service, route, method, self.version),
            )
        children[0].inc()
        children[1].observe(seconds)

    def counter(self, name: str, documentation: str, label: str, values: tuple[str, ...]) -> OutcomeCounter:
        """A business counter with one label, every value exported from the start at 0."""
        return OutcomeCounter(Counter(name, documentation, [label], registry=self.registry), values)

    def watch_queries(self, engine: Any) -> None:
        """Time every statement `engine` runs into `db_query_duration_seconds{service}`."""
        from sqlalchemy import event

        observe = Histogram("db_query_duration_seconds", "Time the database took to run a statement.",
                            ["service"], buckets=LATENCY_BUCKETS, registry=self.registry
                            ).labels(self.service).observe

        def before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: Any) -> None:
            conn.info["query_started"] = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: Any) -> None:
            started = conn.info.pop("query_started", None)
            if started is not None:
                observe(time.perf_counter() - started)

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

    def pool_gauges(self, in_use: Callable[[], float], size: Callable[[], float]) -> None:
        """Database pool gauges read at scrape time."""
        Gauge("db_pool_connections_in_use", "Database connections checked out of the pool.",
              ["service"], registry=self.registry).labels(self.service).set_function(in_use)
        Gauge("db_pool_size", "Connections the database pool keeps open (its configured size).",
              ["service"], registry=self.registry).labels(self.service).set_function(size)


class OutcomeCounter:
    """A counter of outcomes (`orders_total{status}`) whose values are known in advance."""

    def __init__(self, counter: Counter, values: tuple[str, ...]) -> None:
        self._children = {value: counter.labels(value) for value in values}

    def inc(self, value: str) -> None:
        self._children[value].inc()


class ErrorWindow:
    """The share of 5xx answers over the last minute, in one-second buckets."""

    def __init__(self, seconds: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._totals = [0] * seconds
        self._errors = [0] * seconds
        self._stamps = [-1] * seconds

    def record(self, is_error: bool) -> None:
        now = int(self._clock())
        slot = now % self._seconds
        if self._stamps[slot] != now:
            self._stamps[slot], self._totals[slot], self._errors[slot] = now, 0, 0
        self._totals[slot] += 1
        if is_error:
            self._errors[slot] += 1

    def ratio(self) -> float:
        """Errors over answers in the window; 0.0 when nothing was answered."""
        oldest = int(self._clock()) - self._seconds
        total = errors = 0
        for stamp, count, failed in zip(self._stamps, self._totals, self._errors, strict=True):
            if stamp > oldest:
                total += count
                errors += failed
        return errors / total if total else 0.0


# Answers that say a client was refused or asked for what is not there: a scan, a guessed
# token, a brute-forced login show up as many of them from one address.
DENIED = frozenset({401, 403, 404})
OTHER_CLIENTS = "other"


@dataclass
class ClientCount:
    requests: int = 0
    denied: int = 0


class ClientTally:
    """Requests per client address over a window, written to the log when the window closes
    rather than exported as metric labels (one series per address would be unbounded).

    The window closes at the first request after its end, which then logs one line for the
    window and one for each of its `top` busiest clients:

        traffic window=60s total=1234 addresses=57
        traffic client=10.0.0.7 requests=1100 denied=3

    At most `limit` addresses are told apart in a window; further ones count as `other`.
    """

    def __init__(self, window: float, log: Callable[[str], None], *, top: int = 5, limit: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._log = log
        self._top = top
        self._limit = limit
        self._clock = clock
        self._ends = clock() + window
        self._counts: dict[str, ClientCount] = {}

    def record(self, client: str | None, status: int) -> None:
        now = self._clock()
        if now >= self._ends:
            self.flush()
            self._ends = now + self.window
        key = client or "unknown"
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= self._limit:
                key = OTHER_CLIENTS
            count = self._counts.setdefault(key, ClientCount())
        count.requests += 1
        if status in DENIED:
            count.denied += 1

    def flush(self) -> None:
        """Log the closing window's busiest clients and start a new one."""
        counts, self._counts = self._counts, {}
        if not counts:
            return
        total = sum(c.requests for c in counts.values())
        self._log(f"traffic window={self.window:g}s total={total} addresses={len(counts)}")
        busiest = sorted(counts.items(), key=lambda item: -item[1].requests)[:self._top]
        for client, count in busiest:
            self._log(f"traffic client={client} requests={count.requests} denied={count.denied}")
