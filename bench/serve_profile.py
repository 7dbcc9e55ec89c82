"""Where `opsplane serve` spends its memory and CPU at N HTTP targets, measured in-process.

    .venv/bin/python bench/serve_profile.py [--targets 10000] [--duration 30] [--top 25]
        [--freeze] [--no-cprofile] [--tracemalloc]

Builds the control plane the way `opsplane serve` does (same inventory as bench/probes.py,
same nginx targets, uvloop), without the HTTP server in front, and reports:

1. resident memory after each start-up stage (imports, inventory, store, control plane,
   first interval) and the objects the garbage collector tracks;
2. every garbage-collector pass during the window, by generation: count, total and longest
   pause (a pass stops the event loop, so a long one makes every check due then late);
3. a cProfile of the window: the functions that cost the most, own time and cumulative.

`--freeze` moves everything alive after start-up out of the collector's sight
(`gc.freeze()`), to show what that would save. cProfile slows Python code down by about
half again, so its figures are shares, not absolute costs; bench/probes.py gives those.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Children, cpu_times, free_ports, quantile, raise_on_sigterm, status_kib
from _targets import start_targets
from probes import INTERVAL, write_inventory


def _rss() -> str:
    pid = os.getpid()
    return (f"RSS {status_kib(pid, 'VmRSS') / 1024:6.1f} MiB, "
            f"peak {status_kib(pid, 'VmHWM') / 1024:6.1f} MiB, "
            f"{len(gc.get_objects()):>9,} objects tracked")


@dataclass
class CollectorPauses:
    """Every garbage-collector pass while installed, by generation."""

    pauses: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def report(self, window: float) -> list[str]:
        lines = []
        for generation, pauses in self.pauses.items():
            if not pauses:
                lines.append(f"  generation {generation}: no passes")
                continue
            lines.append(
                f"  generation {generation}: {len(pauses):4d} passes, "
                f"{sum(pauses) * 1000:7.0f} ms in all ({100 * sum(pauses) / window:.1f}% of "
                f"the window), longest {max(pauses) * 1000:6.1f} ms, "
                f"median {(quantile(pauses, 0.5) or 0) * 1000:5.1f} ms")
        return lines


async def profile(args: argparse.Namespace, tmp: Path, urls: Sequence[str]) -> None:
    print(f"python and the benchmark:        {_rss()}")
    import uvicorn  # noqa: F401 - serve imports it; its memory is part of the picture

    from opsplane.config import yamlsource
    from opsplane.config.loader import load
    from opsplane.server import ControlPlane, create_app
    from opsplane.store import Store

    print(f"opsplane serve's imports:        {_rss()}")
    inventory_path = tmp / "inventory.yaml"
    write_inventory(inventory_path, urls)
    started = time.perf_counter()
    inventory = load(inventory_path)
    took = time.perf_counter() - started
    gc.collect()
    print(f"inventory loaded ({took:4.1f} s):       {_rss()}")
    # A module-level PyYAML constructor caches every node it has built; see the report.
    constructor = getattr(yamlsource, "_constructor", None)
    cached = getattr(constructor, "constructed_objects", None)
    if cached is not None:
        print(f"  YAML nodes still referenced by yamlsource._constructor: {len(cached):,}")
    if args.tracemalloc:
        tracemalloc.start(1)
    store = Store.open(f"sqlite:///{tmp}/profile.db")
    plane = ControlPlane(inventory, store)
    create_app(plane)
    print(f"store, control plane and app:    {_rss()}")
    await plane.start()
    await asyncio.sleep(INTERVAL)
    print(f"after one interval of probes:    {_rss()}")
    if args.tracemalloc:
        gc.collect()
        print("  allocations alive since the inventory was loaded, by line:")
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:args.top]:
            print(f"    {stat.size / 2**20:6.2f} MiB {stat.count:>8,} blocks  {stat.traceback[0]}")
        tracemalloc.stop()
    if args.freeze:
        gc.collect()
        gc.freeze()
        print(f"  gc.freeze(): {gc.get_freeze_count():,} objects no longer scanned")

    pauses = CollectorPauses()
    profiler = cProfile.Profile() if args.cprofile else None
    probes_before = _probes(plane)
    cpu_before, window_start = cpu_times(os.getpid()), time.monotonic()
    gc.callbacks.append(pauses)
    if profiler:
        profiler.enable()
    try:
        await asyncio.sleep(args.duration)
    finally:
        if profiler:
            profiler.disable()
        gc.callbacks.remove(pauses)
    window = time.monotonic() - window_start
    cpu = cpu_times(os.getpid()) - cpu_before
    probes = _probes(plane) - probes_before
    print(f"after the window:                {_rss()}")
    await plane.stop()
    store.close()

    print(f"\nwindow {window:.1f} s: {probes:,} probes ({probes / window:,.0f}/s), CPU "
          f"{100 * cpu.total / window:.0f}% of a core ({100 * cpu.user / window:.0f} user + "
          f"{100 * cpu.system / window:.0f} sys), {probes / max(cpu.total, 1e-9):,.0f} probes "
          f"per CPU-second{' (under cProfile)' if profiler else ''}")
    print("garbage collector:")
    print("\n".join(pauses.report(window)))
    if profiler:
        for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.strip_dirs().sort_stats(key).print_stats(args.top)
            print(f"\ncProfile, by {title}:")
            print(_trim(out.getvalue()))


def _probes(plane: Any) -> int:
    return int(sum(child._value.get() for child in plane.metrics._probe_children.values()))


def _trim(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(lines[i:])
    return text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=30.0, help="window, in seconds")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after start-up")
    parser.add_argument("--no-cprofile", dest="cprofile", action="store_false")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="list what start-up and the first interval allocated, by line")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    raise_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="opsplane-profile-") as name, \
            Children() as children:
        tmp = Path(name)
        server = start_targets(children, tmp, free_ports(4))
        print(f"{args.targets:,} targets on {server.kind}, every {INTERVAL:g} s\n")
        work = profile(args, tmp, server.urls(args.targets))
        try:
            import uvloop
        except ImportError:
            asyncio.run(work)
        else:
            uvloop.run(work)


if __name__ == "__main__":
    main(sys.argv[1:])
