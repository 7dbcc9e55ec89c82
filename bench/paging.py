"""From a firing alert to a delivered page, and 1,000 alerts firing at once.

    .venv/bin/python bench/paging.py [--repeat 20] [--alerts 1000] [--services 10] [--no-save]
    .venv/bin/python bench/paging.py --faults [--seed 11] [--idle 10]   # the fault run alone

Everything opsplane does between a rule's condition turning true and a receiver holding the
page, in this process, on a SQLite store in a temporary directory, with a real HTTP receiver
on loopback (a thread of this process) behind a signed `webhook` channel:

1. **First page.** A P0 rule starts returning a series; one alerting cycle (`Alerting.run_once`:
   evaluate, store the alert, route it with the default tree, where P0 has no group_wait, queue
   it in the outbox) and one dispatcher pass (`Dispatcher.run_once`: claim, sign, POST, mark)
   follow, as `serve` runs them back to back. Measured: wall time from the start of the cycle
   to the receiver having the request; median and 95th percentile of `--repeat` faults, each a
   new alert group.
2. **A thousand at once.** One rule returns `--alerts` series at once, spread over `--services`
   services, routed with `group_by: [alertname, service]` and Alertmanager's 30 s group_wait.
   Measured: the cycle that takes them all firing, the cycle 30 s later (on an injected clock)
   that notifies, how many notifications it queued (expected: one per service) and how many
   requests the receiver got, and the time to deliver them.

3. **Under faults.** One simulated hour of incidents paged to a voice gateway (one call per
   person), a paging service and a chat channel, while the receivers fail, throttle, answer
   slowly, hang and go down, one person's number is refused for ten minutes, and the
   dispatcher restarts and crashes (bench/_paging_faults.py); each incident is acknowledged
   after 3 min 20 s, which withdraws the calls not made yet. Measured: lost, duplicated and
   late notifications, calls withdrawn, calls made after the acknowledgement and
   acknowledgements to people never called, how long calls took, and the delivery loop's CPU
   while the voice gateway is down; and `serve`'s own delivery loop on the real clock for
   `--idle` seconds while its only receiver refuses every connection.

The condition itself is handed in (no scraping, no PromQL), so the figures are the alerting
and delivery pipeline's own; bench/detection.py measures detection end to end on the shop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine, quantile  # noqa: E402
from _paging_faults import fault_run, goals_met, idle_loop_cpu  # noqa: E402
from _paging_faults import markdown as markdown_faults  # noqa: E402

from opsplane.alerts.flows import Alerting  # noqa: E402
from opsplane.alerts.models import AlertingSettings  # noqa: E402
from opsplane.alerts.state import Sample  # noqa: E402
from opsplane.clock import ManualClock  # noqa: E402
from opsplane.notify.dispatcher import Dispatcher  # noqa: E402
from opsplane.notify.models import ChannelsSettings  # noqa: E402
from opsplane.store import Store  # noqa: E402

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "bench-signing-secret"


class Receiver:
    """A webhook receiver on loopback that notes when each request arrived."""

    def __init__(self) -> None:
        arrivals: list[tuple[float, dict[str, Any]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrivals.append((time.perf_counter(), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.arrivals = arrivals
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Condition:
    """What the rule returns: set by the benchmark."""

    def __init__(self) -> None:
        self.series: list[Sample] = []

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return self.series


def _channels(url: str) -> ChannelsSettings:
    return ChannelsSettings.model_validate({"named": {"hook": {
        "type": "webhook", "url": url, "secret": "env:BENCH_HOOK_SECRET", "rate_per_minute": 100_000}}})


def first_page(store: Store, receiver: Receiver, repeat: int) -> list[float]:
    """Milliseconds from the start of the cycle that sees a P0 condition to the page's arrival."""
    clock, condition = ManualClock(START), Condition()
    settings = AlertingSettings.model_validate({
        "rules": [{"name": "PaymentsDown", "expr": "payments_down", "severity": "P0"}],
        "builtin_rules": {"enabled": False},
        "receivers": {"default": {"channels": ["hook"]}},
    })
    channels = _channels(receiver.url)
    alerting = Alerting(settings, store=store, evaluate=condition.evaluate, clock=clock, channels=channels)
    dispatcher = Dispatcher(store, channels)
    took = []
    for fault in range(repeat):
        condition.series = [({"service": f"payments-{fault}", "env": "production"}, 0.0)]
        before = len(receiver.arrivals)
        began = time.perf_counter()
        alerting.run_once()
        dispatcher.run_once(clock.now())
        if len(receiver.arrivals) != before + 1:
            raise SystemExit(f"fault {fault}: expected one page, the receiver got "
                             f"{len(receiver.arrivals) - before}")
        took.append((receiver.arrivals[-1][0] - began) * 1000)
        condition.series = []
        clock.advance(600)
        alerting.run_once()  # resolved; its resolution goes out in the next pass
        dispatcher.run_once(clock.now())
    dispatcher.close()
    return took


def thousand(store: Store, receiver: Receiver, alerts: int, services: int) -> dict[str, Any]:
    clock, condition = ManualClock(START), Condition()
    settings = AlertingSettings.model_validate({
        "rules": [{"name": "HighErrorRate", "expr": "error_ratio > 0.01", "severity": "P1",
                   "annotations": {"summary": "{{ $labels.instance }} fails"}}],
        "builtin_rules": {"enabled": False},
        "route": {"receiver": "default", "group_by": ["alertname", "service"]},
        "receivers": {"default": {"channels": ["hook"]}},
    })
    channels = _channels(receiver.url)
    alerting = Alerting(settings, store=store, evaluate=condition.evaluate, clock=clock, channels=channels)
    dispatcher = Dispatcher(store, channels)
    condition.series = [({"service": f"svc-{i % services}", "instance": f"i-{i}", "env": "production"}, 0.05)
                        for i in range(alerts)]
    began = time.perf_counter()
    fired = alerting.run_once()
    fire_ms = (time.perf_counter() - began) * 1000
    clock.advance(30)  # Alertmanager's group_wait, the default for P1
    before = len(receiver.arrivals)
    began = time.perf_counter()
    notified = alerting.run_once()
    notify_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    dispatcher.run_once(clock.now())
    deliver_ms = (time.perf_counter() - began) * 1000
    dispatcher.close()
    got = [body for _, body in receiver.arrivals[before:]]
    firing = sum(1 for a in fired.evaluation.alerts if a.state.value == "firing")
    return {"alerts": alerts, "services": services, "firing": firing, "fire_cycle_ms": fire_ms,
            "notify_cycle_ms": notify_ms, "notifications": len(notified.sent), "queued": notified.queued,
            "delivered": len(got), "deliver_ms": deliver_ms,
            "summaries": sorted({body["summary"] for body in got})[:3]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--faults", action="store_true", help="only the fault run")
    parser.add_argument("--seed", type=int, default=11, help="the fault run's random seed")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds to watch serve's delivery loop while its receiver is down")
    args = parser.parse_args(argv)
    header = [f"Measured on {date.today().isoformat()}: {machine().describe()}.", "",
              "```", " ".join([".venv/bin/python bench/paging.py", *argv]), "```", ""]
    faults = _faults(args)
    if args.faults:
        print("\n".join(["## Paging under faults", "", *header, *markdown_faults(faults, args.seed)]))
        _save(args, "paging-faults", faults)
        return 0 if faults["met"] else 2

    import os

    os.environ["BENCH_HOOK_SECRET"] = SECRET
    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory(prefix="opsplane-bench-paging-") as tmp:
            store = Store.open(f"sqlite:///{tmp}/first.db")
            took = first_page(store, receiver, args.repeat)
            store.close()
            store = Store.open(f"sqlite:///{tmp}/thousand.db")
            burst = thousand(store, receiver, args.alerts, args.services)
            store.close()
    finally:
        receiver.close()

    grouped = burst["delivered"] == args.services and burst["notifications"] == args.services
    verdict = "as expected" if grouped else "NOT as expected"
    lines = [
        "## Paging pipeline",
        "",
        *header,
        "| Figure | Value |",
        "| --- | ---: |",
        f"| Firing P0 alert to the page at the receiver (cycle + dispatch), median of {len(took)} | "
        f"{statistics.median(took):.1f} ms |",
        f"| The same, 95th percentile | {quantile(took, 0.95):.1f} ms |",
        f"| {burst['alerts']:,} alerts over {burst['services']} services: the cycle that fires them | "
        f"{burst['fire_cycle_ms']:.0f} ms |",
        f"| The cycle 30 s later that notifies them | {burst['notify_cycle_ms']:.0f} ms |",
        f"| Notifications queued / delivered (expected {args.services}, one per service) | "
        f"{burst['notifications']} / {burst['delivered']} ({verdict}) |",
        f"| Delivering them (one dispatcher pass) | {burst['deliver_ms']:.0f} ms |",
    ]
    lines += ["", "## Paging under faults", "", *header, *markdown_faults(faults, args.seed)]
    print("\n".join(lines))
    _save(args, "paging", {"first_page_ms": took, **burst, "faults": faults})
    return 0 if grouped and faults["met"] else 2


def _faults(args: argparse.Namespace) -> dict[str, Any]:
    result = {**fault_run(args.seed), **idle_loop_cpu(args.idle)}
    result["met"] = goals_met(result)
    return result


def _save(args: argparse.Namespace, name: str, result: dict[str, Any]) -> None:
    if args.no_save:
        return
    out = ROOT / "bench" / "results" / f"{name}-{date.today().isoformat()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
