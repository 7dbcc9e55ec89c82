"""Data sets for checking opsplane's PromQL engine against Prometheus, written once as Python
data and handed to both: as OpenMetrics text (turned into TSDB blocks by promtool) and as
(labels, samples) series for the engine.

Everything lies on one day in January 2026, long before the machine's clock, so
Prometheus accepts the blocks and its head never overlaps them. Values and timestamps are
generated from fixed seeds: the same series every run. Timestamps carry up to half a
second of jitter, as real scrapes do, rounded to the millisecond Prometheus stores. Values
are rounded to a few decimals so that no two series tie (ties would make `topk` pick
either one).

Staleness: OpenMetrics cannot carry stale markers, so a series that "goes away" here
simply has no more samples. Both sides then see its last sample for the 5-minute
lookback and nothing after; the marker-driven case (gone at the next evaluation) is the
in-memory store's business and is tested there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
Samples = tuple[tuple[float, float], ...]
Series = tuple[Labels, Samples]

DAY = 1768435200.0  # 2026-01-15T00:00:00Z
SPAN = 2 * 3600.0  # every data set covers DAY .. DAY + SPAN
STOP_AT = DAY + 3600.0  # where the series that go away have their last sample


def labels_of(name: str, **labels: str) -> Labels:
    """A sorted label tuple with `__name__` included, as the engine's sources yield them."""
    return tuple(sorted({"__name__": name, **labels}.items()))


@dataclass(frozen=True)
class DataSet:
    """A named group of series, one kind of behaviour to check."""

    name: str
    series: tuple[Series, ...]


def _times(rng: random.Random, start: float, end: float, interval: float) -> Iterator[float]:
    t = start
    while t <= end:
        yield round(t + rng.uniform(0.0, 0.5), 3)
        t += interval


def _counter(rng: random.Random, times: Iterable[float], per_second: float,
             resets_at: tuple[float, ...] = ()) -> Samples:
    """A counter rising by a random amount around `per_second` each sample, falling back to
    a small value at each time in `resets_at` (a process restart)."""
    samples: list[tuple[float, float]] = []
    value = round(rng.uniform(0, 1000), 2)
    previous = None
    pending_resets = sorted(resets_at)
    for t in times:
        if pending_resets and t >= pending_resets[0]:
            pending_resets.pop(0)
            value = round(rng.uniform(0, 5), 2)
        elif previous is not None:
            value = round(value + per_second * (t - previous) * rng.uniform(0.5, 1.5), 3)
        samples.append((t, value))
        previous = t
    return tuple(samples)


def _gauge(rng: random.Random, times: Iterable[float], centre: float, spread: float) -> Samples:
    """A gauge wandering around `centre`, on a slow wave plus noise."""
    phase = rng.uniform(0, math.tau)
    def at(t: float) -> float:
        wave = spread * math.sin(phase + (t - DAY) / 900.0)
        return round(centre + wave + rng.uniform(-spread, spread) / 4, 4)

    return tuple((t, at(t)) for t in times)


def http_requests() -> DataSet:
    """Request counters per job, instance, method and code; some processes restart."""
    rng = random.Random(4101)
    series: list[Series] = []
    targets = [("api", "api-1:8080"), ("api", "api-2:8080"), ("web", "web-1:8080"), ("worker", "wk-1:9000")]
    for job, instance in targets:
        for method in ("GET", "POST"):
            for code, share in (("200", 10.0), ("404", 0.7), ("500", 0.3)):
                if job == "worker" and method == "GET":
                    continue
                resets: tuple[float, ...] = ()
                if instance == "api-2:8080":
                    resets = (DAY + 2400.0,)
                if instance == "web-1:8080" and code == "200":
                    resets = (DAY + 1800.0, DAY + 5000.0)
                times = _times(rng, DAY, DAY + SPAN, 15.0)
                samples = _counter(rng, times, share * rng.uniform(0.5, 2.0), resets)
                series.append((labels_of("http_requests_total", job=job, instance=instance,
                                         method=method, code=code), samples))
    for job, instance in targets:
        up = tuple((t, 0.0 if job == "worker" and DAY + 3000 <= t < DAY + 3600 else 1.0)
                   for t in _times(rng, DAY, DAY + SPAN, 15.0))
        series.append((labels_of("up", job=job, instance=instance), up))
    # Info series are written on whole minutes, without jitter, so that some samples fall
    # exactly on the edge of a lookback or range window.
    minutes = [DAY + 60.0 * i for i in range(int(SPAN // 60) + 1)]
    for job, team in (("api", "checkout"), ("web", "storefront"), ("worker", "fulfilment")):
        info = tuple((t, 1.0) for t in minutes)
        series.append((labels_of("service_info", job=job, team=team, version=f"1.{len(team)}"), info))
    return DataSet("http", tuple(series))


def resources() -> DataSet:
    """Gauges: CPU, memory, disk, temperatures below zero, a database connection pool."""
    rng = random.Random(4102)
    series: list[Series] = []
    for instance in ("node-1", "node-2", "node-3"):
        for mode in ("user", "system", "idle"):
            centre = {"user": 0.35, "system": 0.1, "idle": 0.55}[mode]
            samples = _gauge(rng, _times(rng, DAY, DAY + SPAN, 15.0), centre, 0.08)
            series.append((labels_of("node_cpu_ratio", job="node", instance=instance, mode=mode), samples))
        memory = _gauge(rng, _times(rng, DAY, DAY + SPAN, 30.0), 6.0e9, 1.5e9)
        series.append((labels_of("node_memory_used_bytes", job="node", instance=instance), memory))
        size = 8.0e9 if instance != "node-3" else 1.6e10
        total = tuple((t, size) for t in _times(rng, DAY, DAY + SPAN, 30.0))
        series.append((labels_of("node_memory_total_bytes", job="node", instance=instance), total))
        for mount in ("/", "/var"):
            disk = _gauge(rng, _times(rng, DAY, DAY + SPAN, 60.0), 0.3, 0.2)
            disk_labels = labels_of("node_disk_free_ratio", job="node", instance=instance, mount=mount)
            series.append((disk_labels, disk))
    for room in ("cold-store", "freezer", "office"):
        centre = {"cold-store": 2.0, "freezer": -18.0, "office": 21.0}[room]
        temp = _gauge(rng, _times(rng, DAY, DAY + SPAN, 30.0), centre, 4.0)
        series.append((labels_of("room_temperature_celsius", job="sensors", room=room), temp))
    for service in ("orders", "payments", "catalog"):
        in_use = tuple((t, float(rng.randint(0, 20))) for t in _times(rng, DAY, DAY + SPAN, 15.0))
        series.append((labels_of("db_pool_connections_in_use", job=service, service=service), in_use))
        size = tuple((t, 20.0) for t in _times(rng, DAY, DAY + SPAN, 15.0))
        series.append((labels_of("db_pool_connections_max", job=service, service=service), size))
    # Success ratios that are NaN when a scrape saw no requests (0/0), and one always NaN:
    # targets export such NaNs, which are values, not stale markers.
    for service, nan_every in (("orders", 0), ("payments", 7), ("search", 5), ("gift-cards", 1)):
        ratio = tuple(
            (t, math.nan if nan_every and i % nan_every == 0 else round(rng.uniform(0.95, 1.0), 5))
            for i, t in enumerate(_times(rng, DAY, DAY + SPAN, 15.0))
        )
        series.append((labels_of("success_ratio", job=service, service=service), ratio))
    return DataSet("resources", tuple(series))


def sparse_and_stale() -> DataSet:
    """Series with gaps longer than the lookback, and series that stop half way through."""
    rng = random.Random(4103)
    series: list[Series] = []
    batch_times = list(_times(rng, DAY, DAY + SPAN, 600.0))
    series.append((labels_of("batch_last_success_timestamp_seconds", job="batch", task="export"),
                   tuple((t, math.floor(t - rng.uniform(1, 30))) for t in batch_times)))
    # A gauge scraped every 15 s with a 20-minute hole in it.
    gappy = [t for t in _times(rng, DAY, DAY + SPAN, 15.0) if not DAY + 2000 <= t < DAY + 3200]
    series.append((labels_of("queue_depth", job="queue", instance="q-1"),
                   _gauge(rng, gappy, 40.0, 25.0)))
    # The same metric from an instance that goes away for good at STOP_AT.
    early = list(_times(rng, DAY, STOP_AT, 15.0))
    series.append((labels_of("queue_depth", job="queue", instance="q-2"),
                   _gauge(rng, early, 10.0, 5.0)))
    # A counter that goes away, and one that only starts late.
    series.append((labels_of("jobs_processed_total", job="queue", instance="q-2"),
                   _counter(rng, _times(rng, DAY, STOP_AT, 15.0), 2.0)))
    series.append((labels_of("jobs_processed_total", job="queue", instance="q-3"),
                   _counter(rng, _times(rng, DAY + 4000, DAY + SPAN, 15.0), 3.0)))
    # A counter reported once a minute with a reset inside a gap.
    slow = [t for t in _times(rng, DAY, DAY + SPAN, 60.0) if not DAY + 5000 <= t < DAY + 5600]
    series.append((labels_of("cron_runs_total", job="cron"),
                   _counter(rng, slow, 0.05, resets_at=(DAY + 5600.0,))))
    return DataSet("sparse", tuple(series))


_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _histogram(rng: random.Random, name: str, labels: dict[str, str], typical: float,
               resets_at: tuple[float, ...] = ()) -> list[Series]:
    """A classic histogram: cumulative `le` buckets, `_sum` and `_count`, observations drawn
    log-normally around `typical` seconds, all reset together on a restart."""
    bounds = (*_BUCKETS, math.inf)
    counts = [0.0] * len(bounds)
    total = 0.0
    times = list(_times(rng, DAY, DAY + SPAN, 15.0))
    per_bucket: list[list[tuple[float, float]]] = [[] for _ in bounds]
    sums: list[tuple[float, float]] = []
    pending = sorted(resets_at)
    for t in times:
        if pending and t >= pending[0]:
            pending.pop(0)
            counts = [0.0] * len(bounds)
            total = 0.0
        for _ in range(rng.randint(5, 40)):
            observed = rng.lognormvariate(math.log(typical), 0.8)
            total += observed
            for i, bound in enumerate(bounds):
                if observed <= bound:
                    counts[i] += 1
        for i in range(len(bounds)):
            per_bucket[i].append((t, counts[i]))
        sums.append((t, round(total, 6)))
    out: list[Series] = []
    for bound, samples in zip(bounds, per_bucket, strict=True):
        le = "+Inf" if math.isinf(bound) else repr(bound)
        out.append((labels_of(f"{name}_bucket", **labels, le=le), tuple(samples)))
    out.append((labels_of(f"{name}_sum", **labels), tuple(sums)))
    out.append((labels_of(f"{name}_count", **labels), tuple(per_bucket[-1])))
    return out


def latency_histograms() -> DataSet:
    """Request latency histograms for three services, one of which restarts."""
    rng = random.Random(4104)
    series: list[Series] = []
    for job, instance, typical, resets in (
        ("api", "api-1:8080", 0.08, ()),
        ("api", "api-2:8080", 0.12, (DAY + 2400.0,)),
        ("payments", "pay-1:8080", 0.6, ()),
    ):
        series += _histogram(rng, "http_request_duration_seconds", {"job": job, "instance": instance},
                             typical, resets)
    return DataSet("histograms", tuple(series))


def all_datasets() -> tuple[DataSet, ...]:
    """Every data set; their metric names do not overlap, so they can share one server."""
    return (http_requests(), resources(), sparse_and_stale(), latency_histograms())


def all_series() -> list[Series]:
    """The series of every data set, in one list."""
    return [s for dataset in all_datasets() for s in dataset.series]
