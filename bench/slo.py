"""What recording SLOs costs: CPU per minute's cycle and memory, for many SLOs over 30 days of
stored minutes and hours, against re-reading each window from the store every minute.

    .venv/bin/python bench/slo.py [--slos 100] [--cycles 10] [--no-save]

A SQLite store in a temporary directory is filled as 30 days of `serve` would leave it: per
SLO, 27 days of hour rows and the last 3 days of minute rows (1,000 requests a minute, one
in a thousand failing). The SLO worker's code then runs its cycles on an injected clock, each
minute: every SLO's events read from a sample store holding 10 minutes of 15-second scrapes of
its counters, the minute added to its ledger and written to the store, every status judged
and its series built. Measured:

- **load**: reading every SLO's ledger back from the store, as `serve` does at start;
- **ledger memory**: the bytes of the ledgers' arrays, and the Python heap the loaded ledgers
  hold (tracemalloc);
- **cycle**: CPU seconds (process time) of one recording cycle, median and maximum;
- **baseline, re-reading**: the same statuses worked out by loading each SLO's window from the
  store every cycle (what `opsplane slo status` does once), instead of the ledgers in memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def inventory_text(slos: int) -> str:
    lines = ["platform: {name: shop}", "services:"]
    lines += [f"  svc-{i}: {{port: {9000 + i}, metrics_path: /metrics}}" for i in range(slos)]
    lines.append("slos:")
    for i in range(slos):
        lines += [f"  svc-{i}-availability:", f"    service: svc-{i}", "    objective: 99.9%",
                  "    sli:", "      events:",
                  f"        bad: 'http_requests_total{{service=\"svc-{i}\",status=\"500\"}}'",
                  f"        total: 'http_requests_total{{service=\"svc-{i}\"}}'"]
    return "\n".join(lines) + "\n"


def fill(store: Any, names: list[str]) -> None:
    """30 days of rows per SLO: hours for the first 27, minutes (and their hours) for the last 3."""
    from sqlalchemy import insert

    from opsplane.slo.tables import SloHourRow, SloMinuteRow

    first_hour = NOW - timedelta(days=30)
    minute0 = int((NOW - timedelta(days=3)).timestamp()) // 60
    with store.session() as session:
        for name in names:
            session.execute(insert(SloHourRow), [
                {"slo": name, "at": first_hour + timedelta(hours=h), "good": 59_940.0, "total": 60_000.0,
                 "slices": 0, "bad_slices": 0, "minutes": 60} for h in range(30 * 24)])
            session.execute(insert(SloMinuteRow), [
                {"slo": name, "at": datetime.fromtimestamp((minute0 + m) * 60, UTC), "good": 999.0,
                 "total": 1000.0, "slices": 0, "bad_slices": 0} for m in range(3 * 1440)])


def scrapes(samples: Any, slos: int, start: float, end: float, counts: dict[int, float]) -> None:
    """15-second scrapes of every service's two counters in [start, end)."""
    at = start
    while at < end:
        for i in range(slos):
            counts[i] = counts.get(i, 0.0) + 250.0
            base = {"__name__": "http_requests_total", "service": f"svc-{i}", "job": f"svc-{i}"}
            samples.append_scrape(f"svc-{i}", at, [
                (tuple(sorted({**base, "status": "200"}.items())), counts[i] * 0.999),
                (tuple(sorted({**base, "status": "500"}.items())), counts[i] * 0.001)])
        at += 15.0


def measure(slos: int, cycles: int) -> dict[str, Any]:
    from opsplane.clock import ManualClock
    from opsplane.config.loader import loads
    from opsplane.metrics.scrape import LockedSource
    from opsplane.metrics.store import SampleStore
    from opsplane.slo import service
    from opsplane.slo.worker import SloWorker
    from opsplane.store import Store
    from opsplane.telemetry import ControlPlaneMetrics
    from opsplane.workers import WorkerContext

    inventory = loads(inventory_text(slos))
    names = list(inventory.slos)
    workdir = Path(tempfile.mkdtemp(prefix="bench-slo-"))
    store = Store.open(f"sqlite:///{workdir}/o.db")
    began = time.perf_counter()
    fill(store, names)
    filled = time.perf_counter() - began

    clock = ManualClock(NOW + timedelta(seconds=25))
    sample_store = SampleStore(window=3600.0, clock=clock)
    lock = threading.Lock()

    class Scraped:
        store = sample_store

        def locked_source(self) -> LockedSource:
            return LockedSource(sample_store, lock)

        def append_scrape(self, target: str, at: float, samples: Any) -> None:
            with lock:
                sample_store.append_scrape(target, at, samples)

    scraped = Scraped()
    counts: dict[int, float] = {}
    scrapes(scraped, slos, NOW.timestamp() - 600, NOW.timestamp() + 25, counts)
    ctx = WorkerContext(inventory=inventory, store=store, clock=clock, env="production",
                        metrics=ControlPlaneMetrics(process=False))
    ctx.samples = scraped  # type: ignore[assignment]
    tracemalloc.start()  # the heap the ledgers hold, on a worker of its own (tracemalloc slows it)
    traced = SloWorker(ctx)
    before = tracemalloc.take_snapshot()
    traced._load()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    heap = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    arrays = sum(ledger.memory_bytes() for ledger in traced.ledgers.values())
    del traced
    worker = SloWorker(ctx)
    began = time.process_time()
    worker._load()
    load_cpu = time.process_time() - began

    cycle_cpu: list[float] = []
    baseline_cpu: list[float] = []
    for _ in range(cycles):
        start = clock.now().timestamp()
        scrapes(scraped, slos, start, start + 60, counts)
        clock.advance(60)
        due = int((clock.now().timestamp() - 20) // 60)
        began = time.process_time()
        worker._record(worker._next, due)
        worker._next = due
        worker._judge()
        cycle_cpu.append(time.process_time() - began)
        began = time.process_time()
        with store.session() as session:
            service.statuses(session, inventory.slos, now=clock.now())
        baseline_cpu.append(time.process_time() - began)
    status = next(iter(worker.statuses.values()))
    return {
        "slos": slos, "cycles": cycles, "fill_seconds": round(filled, 1),
        "load_cpu_seconds": round(load_cpu, 3), "ledger_array_bytes": arrays, "ledger_heap_bytes": heap,
        "cycle_cpu_median_ms": round(1000 * statistics.median(cycle_cpu), 1),
        "cycle_cpu_max_ms": round(1000 * max(cycle_cpu), 1),
        "baseline_cpu_median_ms": round(1000 * statistics.median(baseline_cpu), 1),
        "baseline_cpu_max_ms": round(1000 * max(baseline_cpu), 1),
        "check_events_in_window": status.counts.total, "check_budget_consumed": status.consumed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from _common import machine

    figures = measure(args.slos, args.cycles)
    mb = 1024 * 1024
    lines = [
        f"Measured on {date.today().isoformat()}: {machine().describe()}.", "",
        "```", f".venv/bin/python bench/slo.py --slos {args.slos} --cycles {args.cycles}", "```", "",
        "| What | Ledgers in memory (serve) | Re-reading the store each minute (baseline) |",
        "| --- | ---: | ---: |",
        f"| CPU per cycle, median / max | {figures['cycle_cpu_median_ms']:,.1f} ms / "
        f"{figures['cycle_cpu_max_ms']:,.1f} ms | {figures['baseline_cpu_median_ms']:,.1f} ms / "
        f"{figures['baseline_cpu_max_ms']:,.1f} ms |",
        f"| Load at start | {figures['load_cpu_seconds']:.2f} s CPU | - |",
        f"| Memory | {figures['ledger_array_bytes'] / mb:.1f} MiB of arrays, "
        f"{figures['ledger_heap_bytes'] / mb:.1f} MiB heap | - |",
    ]
    print("\n".join(lines))
    print(f"\n(filled {args.slos} SLOs x 30 days in {figures['fill_seconds']} s; first SLO: "
          f"{figures['check_events_in_window']:,.0f} events, "
          f"budget used {figures['check_budget_consumed']:.3f})")
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"slo-{date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, indent=2))
        print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
