"""HTTP probing throughput: `opsplane serve` against Prometheus's blackbox exporter.

    .venv/bin/python bench/probes.py [--targets 1000,10000] [--duration 60] [--json]

For each target count N, against one nginx serving N distinct URLs on loopback, every URL
probed once per 10 s interval:

1. opsplane: an inventory of N services with one `http` check each, run by the real
   `opsplane serve`; figures from its `/metrics` and /proc.
2. blackbox: the exporter, asked by this process for `/probe?target=<url>` at the same rate
   over keep-alive connections; figures from the answers and /proc.

The two run one after the other, never together, so that on a small machine neither steals
the other's CPU. Each gets one interval of warm-up, then a window of `--duration` seconds in
which probes and CPU time (user + system, the prober process only) are counted. bench/README.md
says what every figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _blackbox import BlackboxDriver, blackbox_binary, blackbox_version, start_blackbox
from _common import (
    Child,
    ChildFailed,
    Children,
    cpu_seconds,
    cpu_times,
    free_port,
    free_ports,
    histogram_quantile,
    http_get,
    machine,
    quantile,
    raise_on_sigterm,
    share_at_most,
    status_kib,
    wait_for_http,
)
from _report import ProberRun, Report, markdown, table, verdicts
from _targets import TargetServer, start_targets

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
INTERVAL = 10.0
TIMEOUT = 2.0
TARGET_PORTS = 4
STOP_GRACE = 10.0


# --- opsplane ------------------------------------------------------------------------------


def write_inventory(path: Path, urls: Sequence[str]) -> None:
    """N services named t00000..., each with one http check of one URL."""
    lines = ["version: 1", "platform:", "  name: bench", "services:"]
    for i, url in enumerate(urls):
        lines += [f"  t{i:05d}:", "    checks:", "      - type: http", f"        url: {url}",
                  f"        interval: {INTERVAL:g}s", f"        timeout: {TIMEOUT:g}s"]
    path.write_text("\n".join(lines) + "\n")


def opsplane_command() -> list[str]:
    for candidate in (ROOT / ".venv" / "bin" / "opsplane", Path(sys.executable).parent / "opsplane"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "opsplane"]


Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text page, by sample name."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = http_get(url, timeout=10)
    if status != 200:
        raise ChildFailed(f"GET {url} answered {status or 'nothing'}")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


Where = Callable[[dict[str, str]], bool] | None


def total(samples: Samples, name: str, where: Where = None) -> float:
    """The sum of every `name` sample whose labels `where` accepts (all when None)."""
    return sum(value for labels, value in samples.get(name, []) if where is None or where(labels))


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    return sorted((float(labels["le"]), value) for labels, value in samples.get(name, []))


async def watch(seconds: float, *children: Child) -> None:
    """Sleep `seconds`, raising ChildFailed as soon as one of `children` dies."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        for child in children:
            child.check_alive()
        await asyncio.sleep(min(left, 0.5))


async def run_opsplane(
    children: Children, tmp: Path, server: TargetServer, count: int, duration: float
) -> ProberRun:
    inventory = tmp / f"opsplane-{count}.yaml"
    write_inventory(inventory, server.urls(count))
    port = free_port()
    database = tmp / f"bench-{count}.db"
    env = dict(os.environ, OPSPLANE_DATABASE_URL=f"sqlite:///{database}")
    env.pop("OPSPLANE_CONFIG", None)
    child = children.start(Child(
        f"opsplane serve ({count} targets)",
        [*opsplane_command(), "-c", str(inventory), "serve", "--port", str(port),
         "--log-level", "warning"],
        log=tmp / f"opsplane-{count}.log", cwd=tmp, env=env))
    base = f"http://127.0.0.1:{port}"
    ready = await asyncio.to_thread(wait_for_http, f"{base}/health", child, timeout=180)
    await watch(INTERVAL, child, server.child)  # warm-up: every check has had its first slot

    # The two scrapes fall inside the CPU window: Prometheus would scrape it too.
    cpu_before = cpu_times(child.pid)
    before = await asyncio.to_thread(scrape, f"{base}/metrics")
    started = time.monotonic()
    await watch(duration, child, server.child)
    after = await asyncio.to_thread(scrape, f"{base}/metrics")
    window = time.monotonic() - started
    cpu = cpu_times(child.pid) - cpu_before
    peak = status_kib(child.pid, "VmHWM") * 1024 / 1e6

    def delta(name: str, where: Where = None) -> int:
        return round(total(after, name, where) - total(before, name, where))

    probes = delta("opsplane_probes_total")
    ok = delta("opsplane_probes_total", lambda labels: labels.get("state") == "OK")
    # The window's own histogram: the cumulative counts at its end minus those at its start.
    at_start = dict(buckets(before, "opsplane_scheduler_lateness_seconds_bucket"))
    lateness = [(bound, value - at_start.get(bound, 0.0))
                for bound, value in buckets(after, "opsplane_scheduler_lateness_seconds_bucket")]
    p50, p99 = histogram_quantile(0.5, lateness), histogram_quantile(0.99, lateness)
    run = ProberRun(
        prober="opsplane", targets=count, window=window, expected_rate=count / INTERVAL,
        probes=probes, ok=ok, failed=probes - ok, cpu_seconds=cpu.total,
        cpu_user_seconds=cpu.user, cpu_system_seconds=cpu.system, peak_rss_mb=peak,
        lateness_p50_ms=None if p50 is None else p50 * 1000,
        lateness_p99_ms=None if p99 is None else p99 * 1000,
        started_within_100ms=share_at_most(0.1, lateness) if lateness else None,
        skipped=delta("opsplane_scheduler_skipped_total"), ready_seconds=ready,
        state_changes=delta("opsplane_check_state_changes_total"))
    run.exit_code, run.stop_seconds = await asyncio.to_thread(child.terminate, STOP_GRACE)
    run.stopped_event = _recorded_stop(database)
    if run.failed:
        run.failure_examples = _failure_reasons(database)
    if run.exit_code != 0:
        tail = " | ".join(line for line in child.log_tail(5).splitlines() if line.strip())
        run.notes.append(f"exit status {run.exit_code} {run.stop_seconds:.1f} s after SIGTERM "
                         f"(control_plane.stopped event recorded: "
                         f"{'yes' if run.stopped_event else 'no'}); end of its log: {tail}")
    return run


def _recorded_stop(database: Path) -> bool:
    """Whether the control plane wrote its `control_plane.stopped` event, i.e. whether its
    own shutdown ran to the end whatever its exit status says."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as db:
            row = db.execute(
                "SELECT count(*) FROM events WHERE kind = 'control_plane.stopped'").fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def _failure_reasons(database: Path, limit: int = 3) -> list[str]:
    """The commonest reasons of changes to a failing state over the whole run (warm-up
    included), from the events the control plane wrote; the API would need a token."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as db:
            rows = db.execute(
                "SELECT json_extract(details, '$.reason'), count(*) FROM events "
                "WHERE kind = 'check.state_changed' AND outcome != 'OK' "
                "GROUP BY 1 ORDER BY 2 DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.Error as exc:
        return [f"no reasons: cannot read {database.name}: {exc}"]
    return [f"{count:,} x {reason!r}" for reason, count in rows]


# --- blackbox ------------------------------------------------------------------------------


async def run_blackbox(
    children: Children, tmp: Path, server: TargetServer, count: int, duration: float,
    binary: str,
) -> ProberRun:
    port = free_port()
    child = start_blackbox(children, tmp, binary, port)
    driver = BlackboxDriver(port, server.urls(count), interval=INTERVAL)
    driving = asyncio.create_task(driver.run())
    try:
        await watch(INTERVAL, child, server.child)
        before, cpu_before = driver.counts.snapshot(), cpu_times(child.pid)
        own_before, started = cpu_seconds(os.getpid()), time.monotonic()
        await watch(duration, child, server.child)
        after, cpu = driver.counts.snapshot(), cpu_times(child.pid) - cpu_before
        own_after, window = cpu_seconds(os.getpid()), time.monotonic() - started
        if driving.done():
            driving.result()  # the driver died: say why
    finally:
        driving.cancel()
        await asyncio.gather(driving, return_exceptions=True)
    peak = status_kib(child.pid, "VmHWM") * 1024 / 1e6
    sent = after.sent - before.sent
    late = driver.lateness[before.sent:after.sent]
    answered = after.answered - before.answered
    run = ProberRun(
        prober="blackbox", targets=count, window=window, expected_rate=count / INTERVAL,
        probes=answered, ok=after.succeeded - before.succeeded,
        failed=(after.failed - before.failed) + (after.errors - before.errors),
        cpu_seconds=cpu.total, cpu_user_seconds=cpu.user, cpu_system_seconds=cpu.system,
        peak_rss_mb=peak)
    p50, p99 = quantile(late, 0.5), quantile(late, 0.99)
    run.driver = {
        "sent_per_second": sent / window,
        "send_lateness_p50_ms": None if p50 is None else p50 * 1000,
        "send_lateness_p99_ms": None if p99 is None else p99 * 1000,
        "errors": after.errors - before.errors,
        "cpu_percent": 100 * (own_after - own_before) / window,
    }
    if sent < 0.98 * run.expected_rate * window:
        run.notes.append(f"the driver sent only {sent / window:.0f}/s of the "
                         f"{run.expected_rate:.0f}/s asked for")
    if run.failed and driver.last_error:
        run.failure_examples = [driver.last_error]
    run.exit_code, run.stop_seconds = await asyncio.to_thread(child.terminate, STOP_GRACE)
    return run


# --- the run -------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, progress: Callable[[str], None]) -> Report:
    binary = blackbox_binary()
    sides = args.only or ["opsplane", "blackbox"]
    if "blackbox" in sides and binary is None:
        raise ChildFailed("prometheus-blackbox-exporter is not installed: "
                          "apt-get install -y prometheus-blackbox-exporter, or --only opsplane")
    runs: list[ProberRun] = []
    with tempfile.TemporaryDirectory(prefix="opsplane-bench-") as name, Children() as children:
        tmp = Path(name)
        server = start_targets(children, tmp, free_ports(TARGET_PORTS))
        progress(f"targets: {server.kind} on ports {', '.join(map(str, server.ports))}")
        for count in args.targets:
            if "opsplane" in sides:
                progress(f"opsplane, {count} targets: start, {INTERVAL:g} s warm-up, "
                         f"{args.duration:g} s window")
                runs.append(await run_opsplane(children, tmp, server, count, args.duration))
            if "blackbox" in sides and binary is not None:
                progress(f"blackbox, {count} targets: start, {INTERVAL:g} s warm-up, "
                         f"{args.duration:g} s window")
                runs.append(await run_blackbox(children, tmp, server, count, args.duration,
                                               binary))
            server.child.check_alive()
        target_server = server.kind
    versions = {"opsplane": _opsplane_version(), "blackbox_exporter":
                blackbox_version(binary) if binary else "not installed"}
    return Report(
        date=dt.date.today().isoformat(),
        command=" ".join([".venv/bin/python", "bench/probes.py", *sys.argv[1:]]),
        machine=asdict(machine()), versions=versions, interval_seconds=INTERVAL,
        warmup_seconds=INTERVAL, duration_seconds=args.duration, target_server=target_server,
        runs=runs, verdicts=verdicts(runs))


def _opsplane_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opsplane")
    except PackageNotFoundError:
        return "unknown"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="1000,10000", type=_counts,
                        help="comma-separated target counts (default 1000,10000)")
    parser.add_argument("--duration", default=60.0, type=float,
                        help="measurement window per run, in seconds (default 60)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", action="append", choices=["opsplane", "blackbox"],
                        help="run one side only (repeatable)")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write bench/results/probes-DATE.json")
    return parser.parse_args(argv)


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 1000,10000, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("target counts must be positive")
    return counts


def _run(work: Coroutine[Any, Any, Report]) -> Report:
    """Run `work` on uvloop when installed, as `opsplane serve` does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    raise_on_sigterm()

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        report = _run(bench(args, progress))
    except ChildFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the benchmark started has been stopped",
              file=sys.stderr)
        return 130
    data = asdict(report)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"probes-{report.date}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        progress(f"results written to {path.relative_to(ROOT)}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(table(report))
        print()
        print(markdown(report))
    return 0 if all(v.met is not False for v in report.verdicts) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
