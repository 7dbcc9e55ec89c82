"""Notification outbox throughput: notifications per second to a local webhook receiver.

    .venv/bin/python bench/outbox.py [--notifications 2000] [--failure-ratio 0.2] [--no-save]

1. **Receiver.** A separate process (this script with `--receiver`): a threaded HTTP server on
   loopback that answers each POST 202, or 500 to a share of them drawn at random (seeded),
   and counts what it took by `Idempotency-Key`.
2. **Outbox.** A SQLite store in a temporary directory (or `--database-url`), one `webhook`
   channel signed with HMAC-SHA256, its rate limit out of the way. N notifications, as
   trigger and resolve of N/2 groups, are enqueued one transaction each (the way alerting
   enqueues them), then one `Dispatcher` drains the outbox on the real clock, retrying with
   back-off from 10 ms (so the failure run measures the work of retrying, not the waiting).
3. **Runs.** Without failures, then with `--failure-ratio` (default 20 %) of the answers
   500. Each run gets a fresh store and receiver.

Figures: enqueued per second; delivered per second (N divided by the wall time from the
first pass to an empty outbox); attempts per second; the dispatcher's CPU (this process,
`time.process_time`, the receiver not counted); and the receiver's count of keys taken
more than once (must be 0). Target: at least 200 notifications/s delivered with 20 %
failures, far above any channel's own rate limit (Slack takes about one a second).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, machine  # noqa: E402

from opsplane.clock import SystemClock  # noqa: E402
from opsplane.drivers.channels.registry import open_channel  # noqa: E402
from opsplane.notify.dispatcher import Dispatcher  # noqa: E402
from opsplane.notify.models import Channel, ChannelsSettings, Notification  # noqa: E402
from opsplane.notify.outbox import Outbox  # noqa: E402
from opsplane.store import Store  # noqa: E402

TARGET = 200.0
SECRET = "bench-signing-secret"


# --- the receiver (a child process) --------------------------------------------------------


def serve_receiver(port: int, failure_ratio: float) -> None:
    taken: dict[str, int] = {}
    lock = threading.Lock()
    draw = random.Random(42)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                fail = draw.random() < failure_ratio
                if not fail:
                    key = self.headers.get("Idempotency-Key", "")
                    taken[key] = taken.get(key, 0) + 1
            self._answer(500 if fail else 202, b"{}")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                stats = {"taken": len(taken), "repeats": sum(n - 1 for n in taken.values())}
            self._answer(200, json.dumps(stats).encode())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.05)


def _stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            _stats(port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- one run -------------------------------------------------------------------------------


def run(count: int, failure_ratio: float, database_url: str | None) -> dict[str, Any]:
    port = free_port()
    receiver = subprocess.Popen(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--receiver", str(port), str(failure_ratio)],
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_up(port)
        with tempfile.TemporaryDirectory(prefix="opsplane-bench-outbox-") as tmp:
            store = Store.open(database_url or f"sqlite:///{tmp}/opsplane.db")
            try:
                return _measure(store, port, count, failure_ratio)
            finally:
                store.close()
    finally:
        receiver.terminate()
        receiver.wait(10)


def _measure(store: Store, port: int, count: int, failure_ratio: float) -> dict[str, Any]:
    settings = ChannelsSettings.model_validate({
        "retry": {"first": "10ms", "max": "100ms"},
        "named": {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook",
                           "secret": "env:BENCH_SECRET", "rate_per_minute": 10_000_000}},
    })
    clock = SystemClock()
    outbox = Outbox(store, settings)
    started = time.perf_counter()
    for number in range(count):
        group = f"incident-{number // 2}"
        status = "trigger" if number % 2 == 0 else "resolve"
        outbox.enqueue(Notification(key=f"{group}:{status}", group=group, status=status, severity="P1",
                                    summary="Error rate above 5%", service="orders"),
                       channels=["hook"], now=clock.now())
    enqueue_s = time.perf_counter() - started

    def opener(name: str, channel: Channel) -> Any:
        return open_channel(name, channel, environ={"BENCH_SECRET": SECRET})

    dispatcher = Dispatcher(store, settings, opener=opener, batch=500)
    attempts = passes = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while True:
        report = dispatcher.run_once(clock.now())
        attempts += len(report.attempts)
        passes += 1
        wakeup = dispatcher.next_wakeup(clock.now())
        if wakeup is None:
            break
        time.sleep(max(0.0, (wakeup - clock.now()).total_seconds()))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    dispatcher.close()
    stats = _stats(port)
    counts = outbox.counts()
    return {
        "notifications": count, "failure_ratio": failure_ratio,
        "enqueued_per_s": count / enqueue_s, "delivered_per_s": counts.get("delivered", 0) / wall,
        "attempts_per_s": attempts / wall, "attempts": attempts, "passes": passes,
        "wall_s": wall, "cpu_s": cpu, "cpu_share": cpu / wall,
        "delivered": counts.get("delivered", 0), "not_delivered": count - counts.get("delivered", 0),
        "receiver_taken": stats["taken"], "receiver_repeats": stats["repeats"],
    }


# --- report --------------------------------------------------------------------------------


def markdown(results: list[dict[str, Any]], command: str, database: str) -> str:
    lines = [
        f"Measured on {date.today().isoformat()}: {machine().describe()}; store: {database}.",
        "", "```", command, "```", "",
        "| Injected failures | Enqueued/s | Delivered/s | Attempts/s | Dispatcher CPU | Delivered | "
        "Taken twice |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['failure_ratio']:.0%} | {r['enqueued_per_s']:,.0f} | {r['delivered_per_s']:,.0f} | "
            f"{r['attempts_per_s']:,.0f} | {r['cpu_share']:.0%} of a core | "
            f"{r['delivered']:,} of {r['notifications']:,} | {r['receiver_repeats']} |")
    failing = results[-1]
    met = failing["delivered_per_s"] >= TARGET and all(
        r["receiver_repeats"] == 0 and r["not_delivered"] == 0 for r in results)
    lines += ["", "| Target | Result | Figures |", "| --- | --- | --- |",
              f"| at least {TARGET:.0f} delivered/s with {failing['failure_ratio']:.0%} failures, "
              f"every one delivered, none taken twice | {'met' if met else 'NOT MET'} | "
              f"{failing['delivered_per_s']:,.0f}/s; {failing['not_delivered']} lost; "
              f"{sum(r['receiver_repeats'] for r in results)} repeats |"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--receiver"]:
        serve_receiver(int(argv[1]), float(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--failure-ratio", type=float, default=0.2)
    parser.add_argument("--database-url", help="a PostgreSQL URL instead of a temporary SQLite file")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    results = [run(args.notifications, ratio, args.database_url) for ratio in (0.0, args.failure_ratio)]
    command = ".venv/bin/python bench/outbox.py" + (" " + " ".join(argv) if argv else "")
    database = "PostgreSQL" if args.database_url else "SQLite (WAL)"
    print(markdown(results, command, database))
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"outbox-{date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(), "runs": results},
                                  indent=2))
        print(f"\nfull results: {out}")
    failing = results[-1]
    ok = failing["delivered_per_s"] >= TARGET and all(
        r["receiver_repeats"] == 0 and r["not_delivered"] == 0 for r in results)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
