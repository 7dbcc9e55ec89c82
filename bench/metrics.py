"""The metrics engine's own speed: ingesting scrapes, evaluating alert rules, memory per series.

    .venv/bin/python bench/metrics.py [--series 10000] [--rules 100] [--no-save]

All in this process, on the CPU clock (`time.process_time`), so the figures are per core:

1. **Ingest.** Metrics pages of N series in all (20 targets, each with request counters by
   route and status, latency histograms by route and two gauges per instance), parsed,
   labelled and appended to a `SampleStore` as every 15 s scrape of an hour would be, with
   the series cache `serve` keeps: samples ingested per CPU-second (page writing excluded).
   Target: at least 100,000.
2. **Memory per series.** What a store holds after that hour (240 samples a series),
   measured with tracemalloc on a tenth of the targets in a second pass (tracemalloc slows
   allocation, so it is off while timing), divided by its series; and per sample.
3. **Rules.** 100 alert rules of the kinds the built-in rule pack has (error ratios from
   `rate` over 5 minutes, latency quantiles from histogram buckets, `up == 0`, `increase`,
   `avg_over_time`, thresholds), evaluated after each of 5 more scrapes over the same store
   as `serve` evaluates them (`alerts.engine.evaluate_with`: selections and subexpressions
   shared within a cycle): milliseconds per cycle, median of 5 cycles. For comparison, the
   same rules each evaluated on its own, sharing nothing.
   Target: under 100 ms for 100 rules over 10,000 series.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402

from opsplane.alerts.engine import evaluate_with  # noqa: E402
from opsplane.clock import ManualClock  # noqa: E402
from opsplane.metrics.ingest import SeriesCache, ingest  # noqa: E402
from opsplane.metrics.scrape import ScrapeTarget  # noqa: E402
from opsplane.metrics.store import SampleStore  # noqa: E402

INTERVAL = 15.0
HOUR = 3600.0
START = 1_800_000_000.0
ROUTES = ("/api/products", "/api/search", "/api/carts", "/api/checkout", "/health")
STATUSES = ("200", "404", "500")
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf")


def page(service: int, step: int, instances: int) -> str:
    """One service's metrics page at scrape `step`: request counters per route and status,
    latency histograms per route, a few gauges; values move like a live service's."""
    lines = []
    for instance in range(instances):
        base = step * (10 + instance)
        for r, route in enumerate(ROUTES):
            for s, status in enumerate(STATUSES):
                value = base * (r + 1) // (1 + 20 * s)
                lines.append(f'http_requests_total{{route="{route}",method="GET",status="{status}",'
                             f'pod="p{instance}"}} {value}')
            for b, bound in enumerate(BUCKETS):
                lines.append(f'http_request_duration_seconds_bucket{{route="{route}",le="{bound}",'
                             f'pod="p{instance}"}} {base * (b + 1)}')
        lines.append(f'process_resident_memory_bytes{{pod="p{instance}"}} {1e8 + step * 1000 + service}')
        lines.append(f'db_pool_connections_in_use{{pod="p{instance}"}} {step % 7}')
    return "\n".join(lines) + "\n"


def rules(count: int) -> list[str]:
    kinds = [
        'sum by (service) (rate(http_requests_total{{status=~"5.."}}[5m])) '
        '/ sum by (service) (rate(http_requests_total[5m])) > 0.0{n}',
        'histogram_quantile(0.95, sum by (service, le) '
        '(rate(http_request_duration_seconds_bucket[5m]))) > 0.{n}',
        'up{{service="svc-{n}"}} == 0',
        'increase(http_requests_total{{route="/api/checkout",status="500"}}[10m]) > {n}',
        'avg_over_time(db_pool_connections_in_use[5m]) > {n}',
        'max by (service) (process_resident_memory_bytes) > 1e9 + {n}',
    ]
    return [kinds[i % len(kinds)].format(n=i % 10 + 1) for i in range(count)]


def fill(store: SampleStore, clock: ManualClock, targets: list[ScrapeTarget], instances: int,
         steps: int, cache: SeriesCache) -> tuple[float, int]:
    """An hour of scrapes into `store`; the CPU seconds spent ingesting and samples stored."""
    cpu, samples = 0.0, 0
    for step in range(steps):
        at = START + step * INTERVAL
        if step:
            clock.advance(INTERVAL)
        for i, target in enumerate(targets):
            text = page(i, step, instances)
            began = time.process_time()
            done = ingest(store, target, "production", text, at=at, duration=0.01, cache=cache)
            cpu += time.process_time() - began
            samples += done.appended
    return cpu, samples


def fill_one(store: SampleStore, targets: list[ScrapeTarget], instances: int, step: int,
             cache: SeriesCache) -> None:
    """One more scrape of every target, at the store's clock."""
    at = START + step * INTERVAL
    for i, target in enumerate(targets):
        ingest(store, target, "production", page(i, step, instances), at=at, duration=0.01, cache=cache)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000, help="series in the store (about)")
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    per_instance = len(ROUTES) * (len(STATUSES) + len(BUCKETS)) + 2
    services = 20
    instances = max(1, round(args.series / services / per_instance))
    targets = [ScrapeTarget(f"svc-{i}", f"http://127.0.0.1:{9000 + i}/metrics", INTERVAL, 5.0)
               for i in range(services)]
    clock = ManualClock(datetime.fromtimestamp(START, UTC))
    store = SampleStore(window=HOUR, series_limit=100_000, clock=clock)
    steps = int(HOUR / INTERVAL)
    cache = SeriesCache(200_000)
    cpu, samples = fill(store, clock, targets, instances, steps, cache)
    series = store.series_count

    # Memory, apart: tracemalloc slows every allocation down, so it is not on while timing.
    # A tenth of the targets for the same hour gives the same cost per series.
    gc.collect()
    tracemalloc.start()
    small_clock = ManualClock(datetime.fromtimestamp(START, UTC))
    small = SampleStore(window=HOUR, series_limit=100_000, clock=small_clock)
    fill(small, small_clock, targets[:2], instances, steps, SeriesCache(200_000))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_series, per_sample = held / small.series_count, held / max(small.sample_count, 1)

    expressions = rules(args.rules)
    evaluate = evaluate_with(store)  # as serve's rule loop holds it
    cycles, alone = [], []
    for step in range(steps, steps + 5):
        # A scrape of every target before each cycle, as in serve: the cycle reads the store
        # afresh instead of answers the store kept from the last one.
        clock.advance(INTERVAL)
        fill_one(store, targets, instances, step, cache)
        when = clock.now()
        began = time.process_time()
        for expr in expressions:
            evaluate(expr, when)
        cycles.append(time.process_time() - began)
        # The same rules, each evaluated on its own: what sharing saves.
        began = time.process_time()
        for expr in expressions:
            evaluate_with(store)(expr, when)
        alone.append(time.process_time() - began)
    cycle_ms, alone_ms = statistics.median(cycles) * 1000, statistics.median(alone) * 1000

    rate = samples / cpu
    results = {"series": series, "samples": samples, "ingest_cpu_s": cpu, "samples_per_cpu_s": rate,
               "bytes_per_series": per_series, "bytes_per_sample": per_sample,
               "rules": len(expressions), "cycle_ms": cycle_ms, "cycles_ms": [c * 1000 for c in cycles],
               "unshared_cycle_ms": alone_ms}
    ingest_met, rules_met = rate >= 100_000, cycle_ms < 100
    lines = [
        "## Metrics engine",
        "",
        f"Measured on {date.today().isoformat()}: {machine().describe()}.",
        "",
        "```", " ".join([".venv/bin/python bench/metrics.py", *argv]), "```", "",
        f"{series:,} series from {services} targets scraped every {INTERVAL:g} s for an hour "
        f"({samples:,} samples); {len(expressions)} rules evaluated over them. CPU time of this process.",
        "",
        "| Figure | Value | Target |",
        "| --- | ---: | --- |",
        f"| Ingest (parse + label + store) | {rate:,.0f} samples per CPU-second | "
        f"{'met' if ingest_met else 'NOT MET'}: at least 100,000 |",
        f"| One cycle of {len(expressions)} rules | {cycle_ms:.0f} ms (median of 5) | "
        f"{'met' if rules_met else 'NOT MET'}: under 100 ms |",
        f"| The same rules, nothing shared between them | {alone_ms:.0f} ms (median of 5) | - |",
        f"| Memory per series (an hour of samples) | {per_series:,.0f} bytes | - |",
        f"| Memory per sample | {per_sample:.1f} bytes | - |",
    ]
    print("\n".join(lines))
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"metrics-{date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"\nfull results: {out}")
    return 0 if ingest_met and rules_met else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
