"""Load tests: N shoppers at once against the shop's public API for a while, measured from the
client's side, then the KPIs as the platform measured them over the same span.

The users are a closed model: each of the N runs one shopper session after another (the shop's
traffic generator's sessions, `shop.traffic`: browsing, product pages, searches, carts and
checkouts, with its think time between steps), so N sessions are in flight for the whole run.
Latency percentiles, throughput and errors are counted here, for every request. The KPIs come
from PromQL over the same span: the configured Prometheus (`metrics.source: prometheus`), or
else this command's own scrapes of the inventory's metrics endpoints, taken before, during and
after the load. `judge` holds both against the KPI targets; the result is a Report kept in the
store as job `loadtest`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsplane.capacity.kpi import KpiResult, judge, measure, shown
from opsplane.capacity.kpi import report as kpi_report
from opsplane.capacity.models import Kpi, resolve_kpis
from opsplane.config.types import format_duration
from opsplane.errors import UsageError
from opsplane.reports.models import Finding, Report

if TYPE_CHECKING:
    from opsplane.config.models import Inventory
    from opsplane.metrics.scrape import MetricsScraper
    from shop.traffic_report import Recorder

JOB = "loadtest"
PRODUCTION = "production"
ERROR_RATE = 0.01  # the manual's HighErrorRate
PROGRESS_EVERY = 2.0
SCRAPE_EVERY = 5.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Progress:
    elapsed: float
    duration: float
    requests: int
    failed: int
    p95_ms: float
    rate: float

    def line(self) -> str:
        errors = self.failed / self.requests if self.requests else 0.0
        return (f"{self.elapsed:5.0f}s/{self.duration:.0f}s  {self.requests} requests ({self.rate:.1f}/s)  "
                f"p95 {self.p95_ms:.0f} ms  errors {errors:.1%}")


@dataclass(frozen=True)
class ClientFigures:
    """What the users measured: requests, failures, latency percentiles (ms) overall and by step."""

    duration: float
    requests: int
    failed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    sessions: int = 0

    @property
    def throughput(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"duration_s": round(self.duration, 3), "requests": self.requests, "failed": self.failed,
                "throughput_per_s": round(self.throughput, 2), "error_rate": round(self.error_rate, 5),
                "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
                "sessions": self.sessions, "steps": self.steps, "errors": self.errors}


def percentile_ms(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds (0 for none)."""
    if not ordered:
        return 0.0
    return round(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] * 1000, 2)


def client_figures(recorder: Recorder, duration: float) -> ClientFigures:
    every = sorted(v for values in recorder.latencies.values() for v in values)
    steps = {}
    for name, values in recorder.latencies.items():
        if values:
            ordered = sorted(values)
            steps[name] = {"requests": len(ordered), "failed": recorder.failures[name],
                           "p50_ms": percentile_ms(ordered, 50), "p95_ms": percentile_ms(ordered, 95),
                           "p99_ms": percentile_ms(ordered, 99)}
    return ClientFigures(duration, len(every), sum(recorder.failures.values()), percentile_ms(every, 50),
                         percentile_ms(every, 95), percentile_ms(every, 99), steps, dict(recorder.errors),
                         recorder.sessions_started)


async def drive(base_url: str, *, users: int, duration: float, think_time: float = 0.5,
                seed: int | None = None, on_progress: Callable[[Progress], None] | None = None,
                progress_every: float = PROGRESS_EVERY, timeout: float = REQUEST_TIMEOUT) -> ClientFigures:
    """`users` shoppers, each running sessions back to back against `base_url` for `duration` s."""
    from shop.httpclient import Origin
    from shop.traffic import Shopper, plan_session
    from shop.traffic_report import Recorder

    if users < 1 or duration <= 0 or think_time < 0:
        raise UsageError("a load test needs at least one user, a positive duration and a think time >= 0")
    rng = random.Random(seed)
    recorder = Recorder()
    pages = [10]
    client = Origin(base_url, max_connections=users)
    started = time.monotonic()
    deadline = started + duration

    async def user(own: random.Random) -> None:
        while time.monotonic() < deadline:
            shopper = Shopper(client, random.Random(own.random()), recorder, pages, timeout)
            recorder.sessions_started += 1
            for index, step in enumerate(plan_session(shopper.rng)):
                if index and think_time:
                    await asyncio.sleep(min(shopper.rng.expovariate(1.0 / think_time),
                                            max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    return
                await shopper.step(step)

    async def report_progress() -> None:
        while on_progress is not None:
            await asyncio.sleep(progress_every)
            now = time.monotonic()
            every = sorted(v for values in recorder.latencies.values() for v in values)
            on_progress(Progress(now - started, duration, len(every), sum(recorder.failures.values()),
                                 percentile_ms(every, 95), len(every) / max(now - started, 1e-9)))

    reporter = asyncio.ensure_future(report_progress())
    try:
        await asyncio.gather(*(user(random.Random(rng.random())) for _ in range(users)))
    finally:
        reporter.cancel()
        client.close()
    return client_figures(recorder, time.monotonic() - started)


def client_results(kpis: Sequence[Kpi], figures: ClientFigures) -> list[KpiResult]:
    """The client's figures against the latency KPIs they answer: search (its step's p95) and
    the API's p95 (every request's)."""
    results = []
    for kpi in kpis:
        if kpi.name == "search" and "search" in figures.steps:
            value: float | None = figures.steps["search"]["p95_ms"] / 1000
        elif kpi.name == "api_p95" and figures.requests:
            value = figures.p95_ms / 1000
        else:
            continue
        results.append(KpiResult(kpi, value, judge(kpi, value), "measured by the load test's users"))
    return results


def judge_run(*, env: str, target: str, users: int, duration: float, figures: ClientFigures,
              server: Sequence[KpiResult] | None, server_problem: str | None, window: float) -> Report:
    """The load test's Report: client-side latency against the KPI targets, the error rate
    against the manual's 1 %, and the KPIs the platform measured over the run."""
    kpis = [r.kpi for r in server] if server else []
    client = client_results(kpis or resolve_kpis(None), figures)
    findings: list[Finding] = []
    for result in client:
        if result.status != "met":
            findings.append(Finding({"critical": "critical", "warning": "warning"}.get(result.status, "info"),  # type: ignore[arg-type]
                                    f"client {result.kpi.name}", result.sentence(), result.as_dict()))
    if not figures.requests:
        findings.append(Finding("critical", "requests", f"no request was answered: is {target} up?"))
    elif figures.error_rate > ERROR_RATE:
        findings.append(Finding("critical", "errors", f"{figures.error_rate:.2%} of requests failed, above "
                                f"{ERROR_RATE:.0%}", {"errors": figures.errors}))
    platform = kpi_report(server, window=window, job=JOB) if server else None
    if platform is not None:
        findings += [Finding(f.severity, f"platform {f.subject}", f.what, f.detail)
                     for f in platform.findings]
    if server_problem:
        findings.append(Finding("info", "platform KPIs", f"not read: {server_problem}"))
    summary = (f"{users} users for {format_duration(duration)} against {target} ({env}): "
               f"{figures.requests} requests, {figures.throughput:.1f}/s, p95 {figures.p95_ms:.0f} ms, "
               f"errors {figures.error_rate:.2%}")
    lines = [f"# Load test of {target} ({env})", "", summary, "", "| step | requests | failed | p50 ms | "
             "p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s['requests']} | {s['failed']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} |"
              for name, s in figures.steps.items()]
    lines += ["", "Against the targets (client side):", ""]
    lines += [f"- {r.kpi.name}: {r.sentence()}" for r in client]
    if platform is not None:
        lines += ["", platform.markdown]
    return Report(job=JOB, subject=f"{target} {env}", summary=summary, findings=tuple(findings),
                  body={"env": env, "target": target, "users": users, "duration": duration,
                        "client": figures.as_dict(), "client_kpis": [r.as_dict() for r in client],
                        "platform_kpis": [r.as_dict() for r in server] if server else None,
                        "platform_problem": server_problem},
                  markdown="\n".join(lines) + "\n")


def check_request(inventory: Inventory, *, env: str, target: str | None, i_know: bool) -> tuple[str, str]:
    """The target service and its base URL for `env`; refuses production without `i_know`."""
    from opsplane.metrics.scrape import _base_url

    if env not in inventory.environments:
        raise UsageError(f"no environment {env!r}; the inventory has: {', '.join(inventory.environments)}")
    if env == PRODUCTION and not i_know:
        raise UsageError("load tests run against staging, never production (the manual's rule); "
                         "add --i-know to load production anyway")
    if target is None:
        gateways = [n for n, s in inventory.services.items() if s.kind == "gateway"]
        target = gateways[0] if gateways else "gateway"
    if target not in inventory.services:
        raise UsageError(f"no service {target!r} to load; the services are: {', '.join(inventory.services)}")
    url = _base_url(inventory, env, inventory.services[target])
    if url is None:
        raise UsageError(f"service {target!r} has neither url nor port in {env}")
    return target, url.rstrip("/")


class OwnScrapes:
    """The inventory's metrics endpoints scraped by the load test itself, into a sample store
    of its own, when no Prometheus is configured: before the load, every SCRAPE_EVERY s (a fifth
    of a shorter run, so a series born during the load has a rate), after."""

    def __init__(self, inventory: Inventory, env: str) -> None:
        from opsplane.metrics.scrape import MetricsScraper, scrape_targets
        from opsplane.metrics.store import SampleStore

        self.targets = [t for t in scrape_targets(inventory, env) if t.url and not t.problem]
        self.scraper: MetricsScraper = MetricsScraper(self.targets, store=SampleStore(window=86400.0),
                                                      env=env)

    async def once(self) -> None:
        await asyncio.gather(*(self.scraper.scrape(t) for t in self.targets))

    async def during(self, stop: asyncio.Event, every: float = SCRAPE_EVERY) -> None:
        """Scrape every `every` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                await self.once()

    async def close(self) -> None:
        await self.scraper.close()


def platform_kpis(inventory: Inventory, query: Callable[[str], list[tuple[dict[str, str], float]]],
                  window: float) -> list[KpiResult]:
    return measure(resolve_kpis(inventory.capacity), window, query)


__all__ = ["ClientFigures", "OwnScrapes", "Progress", "check_request", "drive", "judge_run", "platform_kpis",
           "shown"]
