"""bench/backup.py's failover part: `opsplane failover` timed under a steady stream of writes.

Each run builds its own pair (a PostgreSQL primary, its streaming replica, PgBouncer in
transaction pooling in front of the primary), lets a writer insert one row per transaction
through PgBouncer, and fails over with the policy's default read-only fence. It measures the
failover's own total and steps, the longest gap between two committed writes (what clients felt),
the inserts that failed, and the rows the writer saw committed that are missing on the new
primary. Goal: the failover within 15 s, nothing lost."""

from __future__ import annotations

import statistics
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from opsplane.backup.failover import failover
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.store import Store

GOAL_SECONDS = 15.0


class _Writer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.committed: list[tuple[int, float]] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        number = 0
        while not self.stop.is_set():
            number += 1
            try:
                if conn is None:
                    conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None,
                                           connect_timeout=2)
                conn.execute("insert into orders (id) values (%s)", (number,))
                self.committed.append((number, time.monotonic()))
            except psycopg.Error:
                self.failed += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
            time.sleep(0.005)
        if conn is not None:
            conn.close()


def _one(work: Path) -> dict[str, Any]:
    with TemporaryPostgres(work / "primary") as primary:
        primary.execute("create table orders (id integer primary key)")
        with TemporaryPostgres.replica_of(primary, work / "replica") as replica, \
                TemporaryPgBouncer(work / "bouncer", {"shop": Backend(primary.host, primary.port)},
                                   settings={"query_wait_timeout": "30"}) as bouncer:
            inventory = loads(textwrap.dedent(f"""\
                version: 1
                platform: {{name: bench}}
                databases:
                  shop-db: {{host: 127.0.0.1, port: {primary.port}}}
                backup:
                  failover:
                    shop-db:
                      standby: {{host: 127.0.0.1, port: {replica.port}}}
                      pgbouncer: {{host: 127.0.0.1, port: {bouncer.port},
                                  config_file: {bouncer.config_file}, database: shop}}
                """))
            writer = _Writer(bouncer.url("shop"))
            thread = threading.Thread(target=writer.run, daemon=True)
            thread.start()
            store = Store.open(f"sqlite:///{work}/opsplane.db")
            try:
                time.sleep(1.0)
                report = failover(store, inventory, "shop-db", clock=SystemClock(), actor="bench",
                                  environ={})
                time.sleep(1.0)
            finally:
                writer.stop.set()
                thread.join(timeout=10)
                store.close()
            times = [at for _, at in writer.committed]
            gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
            on_new = {row[0] for row in replica.execute("select id from orders")}
            lost = sum(1 for number, _ in writer.committed if number not in on_new)
            return {"ok": report.ok, "total_seconds": report.total_seconds,
                    "steps": {step.name: round(step.seconds, 3) for step in report.steps},
                    "longest_write_gap_seconds": gap, "failed_inserts": writer.failed,
                    "committed": len(writer.committed), "lost": lost}


def measure(repeat: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """`repeat` failovers, each on a pair of its own; the figures and the goal."""
    runs = []
    for number in range(1, repeat + 1):
        with tempfile.TemporaryDirectory(prefix="opsplane-bench-failover-") as work:
            Path(work).chmod(0o755)
            run = _one(Path(work))
        progress(f"  failover {number}/{repeat}: {run['total_seconds']:.2f} s, longest write gap "
                 f"{run['longest_write_gap_seconds']:.2f} s, {run['failed_inserts']} failed, "
                 f"{run['lost']} lost")
        runs.append(run)
    totals = [run["total_seconds"] for run in runs]
    return {"measured": True, "goal_seconds": GOAL_SECONDS, "runs": runs,
            "median_seconds": statistics.median(totals), "max_seconds": max(totals),
            "longest_write_gap_seconds": max(run["longest_write_gap_seconds"] for run in runs),
            "failed_inserts": sum(run["failed_inserts"] for run in runs),
            "lost": sum(run["lost"] for run in runs),
            "met": all(run["ok"] for run in runs) and max(totals) < GOAL_SECONDS
            and sum(run["lost"] for run in runs) == 0}
