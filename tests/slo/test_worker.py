"""The SLO worker on an injected clock and a real store: minutes recorded from scraped counters,
burn rates and budget published as series, an event when a budget is spent and when it has some
left again, and a 30-day window read back from stored rows after a restart."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.events.service import get_all
from opsplane.events.summary import describe
from opsplane.metrics.promql import Labels
from opsplane.metrics.scrape import LockedSource
from opsplane.metrics.store import SampleStore
from opsplane.slo import service
from opsplane.slo.tables import SloHourRow
from opsplane.slo.worker import SloWorker
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import WorkerContext

START = datetime(2026, 12, 7, 9, 0, 10, tzinfo=UTC)

INVENTORY = """\
platform: {name: shop}
services:
  gateway: {port: 8080, metrics_path: /metrics}
slos:
  gateway-availability:
    service: gateway
    objective: 99%
    window: 1h
    sli:
      events:
        bad: http_requests_total{service="gateway",status=~"5.."}
        total: http_requests_total{service="gateway"}
    alerts: {min_events: 10}
"""


class Scraped:
    """The sample store's read side, as the metrics worker gives it."""

    def __init__(self, clock: ManualClock) -> None:
        self.store: SampleStore | None = SampleStore(window=3 * 3600.0, clock=clock)
        self.lock = threading.Lock()

    def sample_store(self, *, series_limit: int) -> SampleStore:
        assert self.store is not None
        return self.store

    def locked_source(self) -> LockedSource | None:
        assert self.store is not None
        return LockedSource(self.store, self.lock)

    def append_scrape(self, target: str, at: float, samples: Sequence[tuple[Labels, float]]) -> None:
        assert self.store is not None
        self.store.append_scrape(target, at, samples)


class Shop:
    """The gateway's request counters, scraped every 15 s while the clock moves."""

    def __init__(self, clock: ManualClock, scraped: Scraped) -> None:
        self.clock, self.scraped = clock, scraped
        self.ok = self.failed = 0.0

    def run(self, seconds: float, *, per_scrape: float, failing: float) -> None:
        for _ in range(int(seconds // 5)):
            self.clock.advance(5)
            if int(self.clock.now().timestamp()) % 15:
                continue
            self.ok += per_scrape * (1 - failing)
            self.failed += per_scrape * failing
            labels = {"__name__": "http_requests_total", "service": "gateway", "job": "gateway"}
            self.scraped.append_scrape("gateway", self.clock.now().timestamp(), [
                (tuple(sorted({**labels, "status": "200"}.items())), self.ok),
                (tuple(sorted({**labels, "status": "500"}.items())), self.failed)])


def worker_for(tmp_path: Path, clock: ManualClock, inventory: str = INVENTORY) -> tuple[SloWorker, Scraped]:
    scraped = Scraped(clock)
    ctx = WorkerContext(inventory=loads(inventory), store=Store.open(f"sqlite:///{tmp_path}/o.db"),
                        clock=clock, env="production", metrics=ControlPlaneMetrics(process=False))
    ctx.samples = scraped
    return SloWorker(ctx), scraped


def series(worker: SloWorker, name: str) -> dict[str, float]:
    return {dict(labels).get("window", ""): value for labels, value in worker.samples
            if dict(labels)["__name__"] == name}


async def rounds(worker: SloWorker, shop: Shop, minutes: int, *, failing: float) -> None:
    for _ in range(minutes * 6):  # the worker's rounds, every 10 s
        shop.run(10, per_scrape=100, failing=failing)
        await worker._round()


async def test_a_failing_gateway_burns_its_budget_spends_it_and_gets_it_back(tmp_path: Path) -> None:
    clock = ManualClock(START)
    worker, scraped = worker_for(tmp_path, clock)
    shop = Shop(clock, scraped)
    await worker.opening()
    await rounds(worker, shop, 10, failing=0.1)
    status = worker.statuses["gateway-availability"]
    # 10 % failing against a 1 % budget: a burn rate of 10 in every window that holds minutes
    assert series(worker, "opsplane_slo_burn_rate")["5m"] == status.burn_rates["5m"]
    assert abs(status.burn_rates["5m"] - 10.0) < 0.01
    assert series(worker, "opsplane_slo_events")["1h"] >= 8 * 400
    assert series(worker, "opsplane_slo_objective") == {"": 0.99}
    assert status.state == "exhausted" and "error budget spent" in status.reason
    with worker.ctx.store.session() as session:
        spent = get_all(session, kind="slo.budget_exhausted")
        kinds = [e.kind for e in spent]
        said = describe(spent[0])
        minutes = service.load(session, name="gateway-availability", slo=worker.slos["gateway-availability"],
                               now=clock.now())
    assert kinds == ["slo.budget_exhausted"]  # once, not each minute
    assert said.startswith("SLO gateway-availability (gateway) spent its error budget: 1000.0% of it used, "
                           "SLI 90.0% against 99.0%; deploys of gateway are frozen"), said
    assert minutes.counts(0, clock.now().timestamp()).total == status.counts.total

    # an hour of clean traffic: the failing minutes leave the 1-hour window
    await rounds(worker, shop, 62, failing=0.0)
    status = worker.statuses["gateway-availability"]
    assert status.remaining == 1.0 and status.burn_rates["1h"] == 0.0
    # the slow-burn windows (6h and 3d) still hold the failing minutes: a ticket's worth
    assert status.state == "warning" and "ticket" in status.reason
    assert series(worker, "opsplane_slo_budget_remaining") == {"": 1.0}
    with worker.ctx.store.session() as session:
        restored = get_all(session, kind="slo.budget_restored")
    assert len(restored) == 1 and restored[0].service == "gateway"


async def test_a_restarted_worker_reads_30_days_back_from_the_store(tmp_path: Path) -> None:
    inventory = INVENTORY.replace("objective: 99%", "objective: 99.9%").replace("window: 1h", "window: 30d")
    now = START.replace(second=0)
    clock = ManualClock(now)
    worker, _ = worker_for(tmp_path, clock, inventory)
    first_hour = now - timedelta(days=30)
    with worker.ctx.store.session() as session:
        # 27 days as hours (their minutes pruned), the last 3 days as minutes: 1000 requests a
        # minute, one minute in a thousand all failed: exactly the budget of 0.1 %
        for h in range(27 * 24):
            session.add(SloHourRow(slo="gateway-availability", at=first_hour + timedelta(hours=h),
                                   good=60_000.0 - 60, total=60_000.0, slices=0, bad_slices=0, minutes=60))
        first = int((now - timedelta(days=3)).timestamp()) // 60
        for m in range(first, first + 3 * 1440):
            service.record(session, slo="gateway-availability", minute=m, good=999.0, total=1000.0)
    await worker.opening()
    status = worker.statuses["gateway-availability"]
    assert status.counts.total == 30 * 1440 * 1000
    assert status.consumed is not None and abs(status.consumed - 1.0) < 1e-9
    assert status.state == "exhausted"
    assert abs(status.burn_rates["3d"] - 1.0) < 1e-9


class Checks:
    """The health worker's running tallies of its checks' results."""

    def __init__(self) -> None:
        self.tallies: dict[str, tuple[int, int]] = {}

    def run(self, component: str, *, ok: int, failed: int) -> None:
        was_ok, was_total = self.tallies.get(component, (0, 0))
        self.tallies[component] = (was_ok + ok, was_total + ok + failed)


async def test_a_checks_sli_counts_the_results_of_its_components_checks(tmp_path: Path) -> None:
    inventory = """\
platform: {name: shop}
services:
  legacy: {port: 8080, checks: [{type: tcp}]}
slos:
  legacy-up: {service: legacy, objective: 99%, window: 1h, sli: {checks: {}}, alerts: {min_events: 1}}
"""
    clock = ManualClock(START)
    worker, _ = worker_for(tmp_path, clock, inventory)
    checks = Checks()
    worker.ctx.checks = checks  # type: ignore[assignment]
    await worker.opening()
    for round_ in range(6 * 4):  # four minutes, a check result every 10 s, one in four failing
        clock.advance(10)
        checks.run("legacy", ok=0 if round_ % 4 == 0 else 1, failed=1 if round_ % 4 == 0 else 0)
        await worker._round()
    status = worker.statuses["legacy-up"]
    assert status.kind == "checks"
    assert status.counts.total >= 12 and status.counts.bad == status.counts.total / 4
    assert status.state == "exhausted"  # a quarter failing against 1 %


async def test_a_latency_threshold_off_the_buckets_leaves_the_slo_unknown_saying_why(tmp_path: Path) -> None:
    inventory = INVENTORY.replace("""    sli:
      events:
        bad: http_requests_total{service="gateway",status=~"5.."}
        total: http_requests_total{service="gateway"}""", """    sli:
      latency: {histogram: 'http_request_duration_seconds{service="gateway"}', threshold: 120ms}""")
    clock = ManualClock(START)
    worker, scraped = worker_for(tmp_path, clock, inventory)
    await worker.opening()
    for _ in range(12):
        clock.advance(10)
        at = clock.now().timestamp()
        scraped.append_scrape("gateway", at, [
            ((("__name__", "http_request_duration_seconds_bucket"), ("le", le), ("service", "gateway")), at)
            for le in ("0.1", "0.15", "+Inf")])
        await worker._round()
    status = worker.statuses["gateway-availability"]
    assert status.state == "unknown"
    assert "no bucket at 0.12 s" in status.reason and "0.1, 0.15" in status.reason
    with worker.ctx.store.session() as session:
        assert service.load(session, name="gateway-availability", slo=worker.slos["gateway-availability"],
                            now=clock.now()).newest == -1  # nothing recorded
