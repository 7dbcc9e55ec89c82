"""What one alerting cycle costs with a thousand alerts firing, and how much of it is writing.

    .venv/bin/python bench/alert_cycle.py [--alerts 1000] [--cycles 40] [--backend sqlite|postgresql|both]
                                         [--baseline /path/to/other/checkout] [--no-save]

One rule returns `--alerts` series over ten services (for 0s: they fire at the first cycle),
routed with `group_by: [alertname, service]`; the default receiver writes its notifications
to the event log. Cycles follow each other every 15 s on an injected clock, as `serve` runs
them (`Alerting.run_once`: evaluate, store, mute, notify), on a store in a temporary
directory (SQLite) or a private PostgreSQL cluster on loopback. Measured, per cycle:

- **fire**: the first cycle, where every alert is new;
- **steady**: later cycles where every alert keeps firing with the same value, the common
  case during an outage (median and 95th percentile of `--cycles`);
- **drifting**: cycles where every alert's value changes each time (0.05, 0.07, 0.05, ...);
- **rows written**: the rows of `alert_states` the cycles insert, update or delete, counted
  from the statements SQLAlchemy sends (an executemany counts each of its rows).

With `--baseline DIR` the same measurement also runs, in a child process, on the opsplane
package of another checkout (say, the main branch), and both are printed side by side.
The condition is handed in (no scraping, no PromQL), so the figures are the cycle's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SERVICES = 10


def measure(url: str, alerts: int, cycles: int) -> dict[str, Any]:
    """The figures of one store at `url`, with whichever opsplane is importable."""
    from sqlalchemy import event

    from opsplane.alerts.flows import Alerting
    from opsplane.alerts.models import AlertingSettings
    from opsplane.clock import ManualClock
    from opsplane.store import Store

    store = Store.open(url)
    written: list[int] = [0]

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if "alert_states" in statement and verb in ("INSERT", "UPDATE", "DELETE"):
            written[0] += len(parameters) if many else 1

    event.listen(store.engine, "before_cursor_execute", count)
    clock = ManualClock(START)
    value = [0.05]
    series = [{"service": f"svc-{i % SERVICES}", "instance": f"i-{i}", "env": "production"}
              for i in range(alerts)]
    summary = "{{ $labels.instance }} fails {{ $value | humanizePercentage }}"
    settings = AlertingSettings.model_validate({
        "rules": [{"name": "HighErrorRate", "expr": "error_ratio > 0.01", "severity": "P1",
                   "annotations": {"summary": summary}}],
        "builtin_rules": {"enabled": False},
        "route": {"receiver": "default", "group_by": ["alertname", "service"]},
    })
    alerting = Alerting(settings, store=store, evaluate=lambda expr, at: [(s, value[0]) for s in series],
                        clock=clock)

    def cycle() -> tuple[float, int]:
        written[0] = 0
        began = time.perf_counter()
        alerting.run_once()
        return (time.perf_counter() - began) * 1000, written[0]

    fire_ms, fire_rows = cycle()
    for _ in range(2):  # 30 s later the groups are notified: leave that cycle out of the steady ones
        clock.advance(15)
        cycle()
    steady = []
    for _ in range(cycles):
        clock.advance(15)
        steady.append(cycle())
    drifting = []
    for i in range(cycles):
        clock.advance(15)
        value[0] = 0.07 if i % 2 == 0 else 0.05
        drifting.append(cycle())
    store.close()
    return {
        "alerts": alerts, "cycles": cycles, "fire_ms": fire_ms, "fire_rows": fire_rows,
        "steady_ms": [ms for ms, _ in steady], "steady_rows": [rows for _, rows in steady],
        "drifting_ms": [ms for ms, _ in drifting], "drifting_rows": [rows for _, rows in drifting],
    }


@contextmanager
def backend_url(backend: str, tmp: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp}/{name}.db"
        return
    from opsplane.drivers.sandbox.postgres import TemporaryPostgres

    with TemporaryPostgres(tmp / f"pg-{name}", password="bench") as cluster:
        cluster.execute(f'CREATE DATABASE "{name}"')
        yield cluster.url(name)


def run_in(source: Path, url: str, alerts: int, cycles: int) -> dict[str, Any]:
    """`measure` in a child process that imports opsplane from `source`."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]); "
            "from alert_cycle import measure; "
            "print(json.dumps(measure(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))")
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", code, str(source), str(ROOT / "bench"), url, str(alerts),
                           str(cycles)], capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the measurement on {source} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _row(label: str, figures: dict[str, Any]) -> str:
    def median(key: str) -> float:
        return statistics.median(figures[key])

    p95 = sorted(figures["steady_ms"])[max(0, round(0.95 * len(figures["steady_ms"])) - 1)]
    return (f"| {label} | {figures['fire_ms']:.0f} ms ({figures['fire_rows']:,} rows) | "
            f"{median('steady_ms'):.1f} ms / {p95:.1f} ms | {statistics.mean(figures['steady_rows']):,.0f} | "
            f"{median('drifting_ms'):.1f} ms / {statistics.mean(figures['drifting_ms']):.1f} ms | "
            f"{statistics.mean(figures['drifting_rows']):,.0f} |")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from _common import machine

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    sources = [("this checkout", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="opsplane-bench-cycle-") as tmp:
        for backend in backends:
            for label, source in sources:
                name = f"{backend}_{'base' if source != ROOT else 'this'}"
                with backend_url(backend, Path(tmp), name) as url:
                    results[f"{backend}, {label}"] = run_in(source, url, args.alerts, args.cycles)
    lines = [
        "## One alerting cycle with 1,000 alerts firing" if args.alerts == 1000
        else f"## One alerting cycle with {args.alerts:,} alerts firing",
        "",
        f"Measured on {date.today().isoformat()}: {machine().describe()}.",
        "",
        "```", " ".join([".venv/bin/python bench/alert_cycle.py", *argv]), "```", "",
        "| Store, code | Fire cycle (rows written) | Steady cycle, median / p95 | Rows written per steady "
        "cycle | Drifting values, median / mean | Rows written per drifting cycle |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(_row(label, figures) for label, figures in results.items()),
    ]
    print("\n".join(lines))
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"alert-cycle-{date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"\nfull results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
