"""The db report's own load on a busy PostgreSQL: what its queries cost the server, against
what the server spends on its work, and what that comes to at the job's weekly cadence.

    .venv/bin/python bench/db_report.py                  # scale 10, 2 x 60 s, about 3 minutes
    .venv/bin/python bench/db_report.py --scale 2 --seconds 20 --tables 50 --json

One private PostgreSQL (pg_stat_statements loaded) with pgbench's tables at `--scale` and
`--tables` more tables, each with two indexes, so the catalog the report reads is a
production database's size. pgbench (PostgreSQL's own, TPC-B-like, `--clients` clients)
keeps it busy for two windows of `--seconds`:

1. **Baseline**: pgbench alone. The server's CPU (every PostgreSQL process: the postmaster,
   its live children and the children it has reaped, from /proc) and pgbench's TPS.
2. **With the report**: the same, and `opsplane db report` run every `--every` seconds. Each
   report's own cost to the server is the CPU time of its backend (/proc/PID/stat, read just
   before its connection closes) and, as a cross-check, the execution time pg_stat_statements
   records for its statements (it connects as a role of its own).

The share at the job's cadence is one report's backend CPU against the CPU the server spends
in a week at the baseline's rate (weekly job: one run per 604,800 s). The share while running
every `--every` seconds is also given: that is the bound for running it far more often.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine  # noqa: E402
from opsplane.drivers import pgstats  # noqa: E402
from opsplane.drivers.sandbox.postgres import TemporaryPostgres, find_postgres_bindir  # noqa: E402
from opsplane.maintenance.report import one_report  # noqa: E402

WEEK = 7 * 24 * 3600.0
REPORT_ROLE = "opsplane_report"


def server_cpu(postmaster: psutil.Process) -> float:
    """CPU seconds every process of the server has used so far: the postmaster, the children
    it has reaped (their whole lives) and the children alive now."""
    own = postmaster.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in postmaster.children():
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def on_cpu(pid: int) -> float:
    """Seconds `pid` has run on a CPU, to the nanosecond (/proc/PID/schedstat; /proc/PID/stat
    counts 10 ms ticks, too coarse for one report)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


class MeasuredConnect:
    """`pgstats.connect` that notes each connection's backend CPU just before it closes."""

    def __init__(self) -> None:
        self.original = pgstats.connect
        self.cpu: list[float] = []

    @contextlib.contextmanager
    def __call__(self, server: pgstats.Server, *, autocommit: bool = True) -> Iterator[Any]:
        with self.original(server, autocommit=autocommit) as conn:
            backend = conn.info.backend_pid
            try:
                yield conn
            finally:
                self.cpu.append(on_cpu(backend))


def pgbench(bindir: Path, pg: TemporaryPostgres, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bindir / "pgbench"), "-h", pg.host, "-p", str(pg.port), "-U", pg.user, *args,
                           "bench"], capture_output=True, text=True, check=True)


def tps(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    return 0.0


def window(bindir: Path, pg: TemporaryPostgres, postmaster: psutil.Process, args: argparse.Namespace,
           report: bool) -> dict[str, Any]:
    """One window of pgbench, with the report every `args.every` seconds or without."""
    result: dict[str, Any] = {}

    def load() -> None:
        ran = pgbench(bindir, pg, "-c", str(args.clients), "-j", "2", "-T", str(args.seconds), "-n")
        result["tps"] = tps(ran.stdout)

    before = server_cpu(postmaster)
    started = time.monotonic()
    runner = threading.Thread(target=load)
    runner.start()
    measured = MeasuredConnect()
    walls: list[float] = []
    target = pgstats.Server("bench", pg.host, pg.port, REPORT_ROLE, "bench")
    if report:
        pgstats.connect = measured  # type: ignore[assignment]
        try:
            time.sleep(min(2.0, args.every))
            while time.monotonic() - started < args.seconds - 1:
                t0 = time.monotonic()
                one_report("bench", target.address, pgstats.collect(target))
                walls.append(time.monotonic() - t0)
                time.sleep(max(0.0, args.every - (time.monotonic() - t0)))
        finally:
            pgstats.connect = measured.original  # type: ignore[assignment]
    runner.join()
    elapsed = time.monotonic() - started
    result.update(seconds=elapsed, server_cpu=server_cpu(postmaster) - before, reports=len(measured.cpu),
                  report_cpu=measured.cpu, report_wall=walls)
    return result


def prepare(pg: TemporaryPostgres, bindir: Path, args: argparse.Namespace) -> None:
    pg.execute("CREATE DATABASE bench")
    pg.execute("CREATE EXTENSION pg_stat_statements", database="bench")
    pg.execute(f"CREATE ROLE {REPORT_ROLE} LOGIN SUPERUSER")
    pgbench(bindir, pg, "-i", "-q", "-s", str(args.scale))
    with pg.connect("bench") as conn:
        for i in range(args.tables):
            conn.execute(f"CREATE TABLE extra_{i} (id int PRIMARY KEY, ref int, note text)")
            conn.execute(f"CREATE INDEX extra_{i}_ref ON extra_{i} (ref)")
            conn.execute(f"INSERT INTO extra_{i} SELECT g, g % 10, 'n' FROM generate_series(1, 200) g")
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_statements_reset()")


def bare_connection_cpu(pg: TemporaryPostgres, times: int = 10) -> float:
    """A connection's backend CPU for `SELECT 1` alone, on average: what any report pays to start."""
    target = pgstats.Server("bench", pg.host, pg.port, REPORT_ROLE, "bench")
    measured = MeasuredConnect()
    for _ in range(times):
        with measured(target) as conn:
            conn.execute("SELECT 1")
    return sum(measured.cpu) / times


def statements_ms(pg: TemporaryPostgres) -> float:
    rows = pg.execute("SELECT coalesce(sum(total_exec_time + total_plan_time), 0) FROM pg_stat_statements s "
                      "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s", (REPORT_ROLE,),
                      database="bench")
    return float(rows[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="pgbench's scale (100,000 accounts each)")
    parser.add_argument("--tables", type=int, default=200, help="more tables, two indexes each")
    parser.add_argument("--clients", type=int, default=4, help="pgbench's clients")
    parser.add_argument("--seconds", type=int, default=60, help="length of each window")
    parser.add_argument("--every", type=float, default=5.0,
                        help="seconds between reports in the second window")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    bindir = find_postgres_bindir()
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "top",
                "pg_stat_statements.track_planning": "on", "shared_buffers": "256MB", "max_connections": "50"}
    with tempfile.TemporaryDirectory(prefix="opsplane-bench-dbreport-") as tmp, \
            TemporaryPostgres(Path(tmp), settings=settings) as pg:
        prepare(pg, bindir, args)
        postmaster = psutil.Process(pg.pid)
        bare = bare_connection_cpu(pg)
        baseline = window(bindir, pg, postmaster, args, report=False)
        pg.execute("SELECT pg_stat_statements_reset()", database="bench")
        loaded = window(bindir, pg, postmaster, args, report=True)
        statements = statements_ms(pg)
    per_report = sum(loaded["report_cpu"]) / max(1, loaded["reports"])
    server_rate = baseline["server_cpu"] / baseline["seconds"]  # CPU seconds per second of the busy server
    figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine().describe(),
        "load_average": os.getloadavg()[0], "scale": args.scale, "tables": args.tables + 4,
        "clients": args.clients, "seconds": args.seconds, "every": args.every,
        "baseline": {"tps": baseline["tps"], "server_cpu_s": round(baseline["server_cpu"], 2),
                     "server_cores": round(server_rate, 3)},
        "with_report": {"tps": loaded["tps"], "server_cpu_s": round(loaded["server_cpu"], 2),
                        "reports": loaded["reports"],
                        "report_cpu_ms": [round(c * 1000, 2) for c in loaded["report_cpu"]],
                        "report_wall_ms": [round(w * 1000, 1) for w in loaded["report_wall"]],
                        "statements_exec_ms_total": round(statements, 1)},
        "per_report_cpu_ms": round(per_report * 1000, 1),
        "bare_connection_cpu_ms": round(bare * 1000, 2),
        "share_weekly": per_report / (server_rate * WEEK) if server_rate else None,
        "share_every": (per_report / args.every) / server_rate if server_rate else None,
        "share_of_window": sum(loaded["report_cpu"]) / loaded["server_cpu"] if loaded["server_cpu"] else None,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "db_report.json").write_text(json.dumps(figures, indent=2))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"Measured on {figures['date']}: {figures['machine']} "
          f"(load average {figures['load_average']:.1f})\n")
    print("| What | pgbench alone (baseline) | pgbench + db report every "
          f"{args.every:g} s |\n| --- | ---: | ---: |")
    print(f"| pgbench TPS | {baseline['tps']:.0f} | {loaded['tps']:.0f} |")
    print(f"| server CPU over {args.seconds} s | {baseline['server_cpu']:.1f} s | "
          f"{loaded['server_cpu']:.1f} s |")
    print(f"| reports run | - | {loaded['reports']} |")
    median_wall = sorted(loaded["report_wall"])[len(loaded["report_wall"]) // 2]
    print(f"\nOne report: {per_report * 1000:.1f} ms of its backend's CPU (median wall "
          f"{median_wall * 1000:.0f} ms; a bare connection running SELECT 1: {bare * 1000:.1f} ms); "
          "pg_stat_statements: "
          f"{statements / max(1, loaded['reports']):.1f} ms of execution and planning per report.")
    print(f"Share of the server's CPU: weekly {figures['share_weekly']:.2e}, every {args.every:g} s "
          f"{figures['share_every']:.2%}, measured in the window {figures['share_of_window']:.2%}.")


if __name__ == "__main__":
    main()
