"""Moving all traffic between two releases, 20 times, under load: nginx against HAProxy.

    .venv/bin/python bench/traffic_switch.py [--switches 20] [--rate 100] [--pause 1.0] [--no-save]
    .venv/bin/python bench/traffic_switch.py --engines haproxy --switches 5 --no-save

For each engine, one after the other:

1. **Backends.** Two releases, v1 and v2, each one process (this script with `--backend`): a
   threaded HTTP/1.1 server on loopback answering every GET 200 with its release in
   `X-Version`.
2. **The proxy.** nginx (two workers) or HAProxy, started from its traffic driver's
   `run_argv()` with the configuration `prepare` wrote, in a temporary directory; one route,
   all traffic to v1.
3. **Load.** `--clients` keep-alive clients in this process send `--rate` GETs a second in
   all, each on its own schedule. Like a browser, a client sends a GET once more on a new
   connection when the connection closed under it without an answer (counted as resent).
4. **Switches.** Every `--pause` seconds `apply()` moves all traffic to the other release:
   nginx by a checked configuration and a graceful reload, HAProxy through its runtime API.

Figures, per engine: requests sent and their rate; failed requests (no answer even when
resent, or a 5xx); requests resent; the switch time, median and 95th percentile (nearest
rank) of `apply()` from its call until it returned, which is when the driver has seen the new
split live (nginx: every worker that accepts connections is a new one; HAProxy: the runtime
API acknowledged each command and `show servers state` reads back the new weights); the first
answer from the new release, counted from the `apply()` call, as the clients saw it; and the
answers from the old release to requests sent after `apply()` returned, which must be none.
Exit status 0 when no request failed and no stale answer came, 2 otherwise, 1 when the
benchmark itself failed. Results: `bench/results/traffic-switch-DATE.json`.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    Child,
    ChildFailed,
    Children,
    free_port,
    machine,
    program_version,
    quantile,
    raise_on_sigterm,
)

from opsplane.config.models import Proxy  # noqa: E402
from opsplane.drivers.traffic import Backend, Route, open_traffic  # noqa: E402
from opsplane.drivers.traffic.verify import route_url  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HEADER = "X-Version"


# --- the backends (child processes) ------------------------------------------------------


def serve_backend(version: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = f"{version}\n".encode()
            self.send_response(200)
            self.send_header(HEADER, version)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def handle_error(self, request: object, client_address: object) -> None:
            pass

    Server(("127.0.0.1", port), Handler).serve_forever(poll_interval=0.05)


# --- the load ----------------------------------------------------------------------------


@dataclass
class Answer:
    sent_at: float
    version: str | None  # None: failed
    resent: bool
    reason: str = ""


class Load:
    """`rate` GETs a second through `url` from `clients` keep-alive clients in threads."""

    def __init__(self, url: str, rate: float, clients: int) -> None:
        self.url, self.rate, self.clients = url, rate, clients
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        self.seconds = time.monotonic() - self.started

    def _run(self, number: int) -> None:
        interval = self.clients / self.rate
        due = time.monotonic() + number * interval / self.clients
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                due += interval
                answer = self._send(client)
                with self._lock:
                    self.answers.append(answer)

    def _send(self, client: httpx.Client) -> Answer:
        sent_at = time.monotonic()
        resent = False
        try:
            try:
                response = client.get(self.url)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                resent = True
                response = client.get(self.url)
        except httpx.HTTPError as exc:
            return Answer(sent_at, None, resent, f"{type(exc).__name__}: {exc}")
        version = response.headers.get(HEADER)
        if response.status_code >= 500 or not version:
            return Answer(sent_at, None, resent, f"HTTP {response.status_code}")
        return Answer(sent_at, version, resent)


# --- one engine --------------------------------------------------------------------------


@dataclass
class Switch:
    to: str
    called: float
    returned: float

    @property
    def seconds(self) -> float:
        return self.returned - self.called


@dataclass
class EngineResult:
    engine: str
    version: str
    switches: int
    requests: int
    rate: float
    failed: int
    resent: int
    apply_median_ms: float
    apply_p95_ms: float
    first_new_median_ms: float | None
    first_new_p95_ms: float | None
    stale_answers: int
    failure_reasons: list[str] = field(default_factory=list)


def run_engine(engine: str, args: argparse.Namespace, children: Children, progress: Any) -> EngineResult:
    with tempfile.TemporaryDirectory(prefix=f"opsplane-bench-{engine}-", dir="/tmp") as tmp:
        directory = Path(tmp)
        ports = {v: free_port() for v in ("v1", "v2")}
        for version, port in ports.items():
            argv = [sys.executable, __file__, "--backend", version, str(port)]
            backend = children.start(Child(f"backend {version}", argv, log=directory / f"{version}.log"))
            _wait_port(port, backend)
        listen = free_port()

        def route(to: str) -> Route:
            return Route("catalog", "127.0.0.1", listen, tuple(
                Backend(f"catalog@{v}", "127.0.0.1", port, 1 if v == to else 0, v)
                for v, port in ports.items()))

        driver = open_traffic("bench", Proxy.model_validate({"engine": engine}), directory=directory)
        driver.prepare([route("v1")])
        proxy = children.start(Child(engine, driver.run_argv(), log=directory / "proxy.log", cwd=directory))
        _wait_port(listen, proxy)
        progress(f"{engine}: {args.switches} switches under {args.rate:g} requests/s")
        switches: list[Switch] = []
        with Load(route_url(route("v1")), args.rate, args.clients) as load:
            time.sleep(args.pause)
            for number in range(args.switches):
                to = "v2" if number % 2 == 0 else "v1"
                called = time.monotonic()
                driver.apply([route(to)])
                switches.append(Switch(to, called, time.monotonic()))
                time.sleep(args.pause)
        proxy.check_alive()
        return _result(engine, _engine_version(engine, driver.run_argv()[0]), switches, load)


def _wait_port(port: int, child: Child) -> None:
    import socket

    deadline = time.monotonic() + 15
    while True:
        child.check_alive()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise ChildFailed(f"{child.name} did not listen on {port} within 15 s:\n{child.log_tail()}")
        time.sleep(0.05)


def _result(engine: str, version: str, switches: list[Switch], load: Load) -> EngineResult:
    answers = sorted(load.answers, key=lambda a: a.sent_at)
    applies = [s.seconds * 1000 for s in switches]
    first_new: list[float] = []
    stale = 0
    for number, switch in enumerate(switches):
        until = switches[number + 1].called if number + 1 < len(switches) else float("inf")
        window = [a for a in answers if switch.called <= a.sent_at < until and a.version]
        new = [a.sent_at for a in window if a.version == switch.to]
        if new:
            first_new.append((new[0] - switch.called) * 1000)
        stale += sum(1 for a in window if a.sent_at > switch.returned and a.version != switch.to)
    failed = [a for a in answers if a.version is None]
    return EngineResult(
        engine=engine, version=version, switches=len(switches), requests=len(answers),
        rate=len(answers) / load.seconds, failed=len(failed), resent=sum(1 for a in answers if a.resent),
        apply_median_ms=statistics.median(applies), apply_p95_ms=quantile(applies, 0.95) or 0.0,
        first_new_median_ms=statistics.median(first_new) if first_new else None,
        first_new_p95_ms=quantile(first_new, 0.95), stale_answers=stale,
        failure_reasons=sorted({a.reason for a in failed})[:5])


def _engine_version(engine: str, binary: str) -> str:
    if engine == "nginx":
        return program_version([binary, "-v"], r"nginx/(\S+)")
    return program_version([binary, "-v"], r"version (\S+)")


# --- report ------------------------------------------------------------------------------


def markdown(results: list[EngineResult], command: str) -> str:
    lines = [f"Measured on {date.today().isoformat()}: {machine().describe()}.",
             "", "```", command, "```", "",
             "| Engine | How | Switches | Requests (rate) | Failed | Resent | Switch time median / p95 | "
             "First new answer median / p95 | Stale answers |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        how = "reload" if r.engine == "nginx" else "runtime API"
        first = "-" if r.first_new_median_ms is None \
            else f"{r.first_new_median_ms:.0f} / {r.first_new_p95_ms or 0:.0f} ms"
        switch = f"{r.apply_median_ms:.1f} / {r.apply_p95_ms:.1f} ms"
        lines.append(f"| {r.engine} {r.version} | {how} | {r.switches} | {r.requests:,} ({r.rate:.0f}/s) | "
                     f"{r.failed} | {r.resent} | {switch} | {first} | {r.stale_answers} |")
    for r in results:
        if r.failure_reasons:
            lines.append(f"\n{r.engine} failures: {'; '.join(r.failure_reasons)}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between switches")
    parser.add_argument("--engines", nargs="+", choices=["nginx", "haproxy"], default=["nginx", "haproxy"])
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--backend"]:
        serve_backend(argv[1], int(argv[2]))
        return 0
    args = parse_args(argv)
    raise_on_sigterm()

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results: list[EngineResult] = []
    try:
        for engine in args.engines:
            with Children() as children:
                results.append(run_engine(engine, args, children, progress))
    except ChildFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    command = ".venv/bin/python bench/traffic_switch.py" + (" " + " ".join(argv) if argv else "")
    print(markdown(results, command))
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"traffic-switch-{date.today().isoformat()}.json"
        path.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(), "command": command,
                                    "engines": [asdict(r) for r in results]}, indent=2) + "\n")
        print(f"\nfull results: {path.relative_to(ROOT)}")
    return 0 if all(r.failed == 0 and r.stale_answers == 0 for r in results) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
