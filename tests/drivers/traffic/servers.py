"""Real processes and servers for the traffic driver tests: backends that name their release,
the proxy started by its driver's run_argv, and a steady client load through it."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

from opsplane.drivers.traffic import Backend, Route, TrafficDriver
from tests.support.polling import wait_for


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _VersionServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = f"{self.server.version}\n".encode()
        self.send_response(200)
        self.send_header(self.server.header, self.server.version)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.server.lock:
            self.server.served += 1

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _VersionServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, version: str, header: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version = version
        self.header = header
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.served = 0

    def handle_error(self, request: object, client_address: object) -> None:
        """A connection the proxy or `stop` broke is not a test failure; what the client saw is."""


class VersionedBackend:
    """One instance of release `version` on a free loopback port: every GET is answered 200
    with the release in `header`."""

    def __init__(self, version: str, header: str = "X-Version") -> None:
        self.version = version
        self._server = _VersionServer(version, header)
        self.host, self.port = "127.0.0.1", int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self.stopped = False

    @property
    def served(self) -> int:
        return self._server.served

    def backend(self, weight: int, name: str | None = None) -> Backend:
        return Backend(name=name or f"app@{self.version}", host=self.host, port=self.port, weight=weight,
                       version=self.version)

    def stop(self) -> None:
        """Stop as a process that exits does: no more connections accepted, open ones closed."""
        if self.stopped:
            return
        self.stopped = True
        self._server.shutdown()
        self._server.server_close()
        with self._server.lock:
            open_connections = list(self._server.connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)


class RunningProxy:
    """The proxy as opsplane's runtime runs it: `driver.run_argv()` in a process of its own,
    its output in `directory/proxy.out`. Ready once every route's listen address accepts."""

    def __init__(self, driver: TrafficDriver, routes: list[Route]) -> None:
        self.driver = driver
        self.routes = routes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return (self.driver.directory / "proxy.out").read_text(errors="replace")

    def __enter__(self) -> RunningProxy:
        self.driver.prepare(self.routes)
        with open(self.driver.directory / "proxy.out", "wb") as out:
            self.process = subprocess.Popen(self.driver.run_argv(), cwd=self.driver.directory,  # noqa: S603
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._listening, "the proxy to listen on every route", timeout=15)
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"the proxy exited: {self.output()}"
        for route in self.routes:
            with socket.socket() as sock:
                if sock.connect_ex(route.listen) != 0:
                    return False
        return True

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class LoadReport:
    """What a steady load saw: answers by release, failures with what went wrong, and the
    requests sent again because a keep-alive connection closed under them before any answer
    (`retried`)."""

    sent: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retried: int = 0
    seconds: float = 0.0
    answers: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time sent, release)

    def releases_sent_after(self, moment: float) -> set[str]:
        """The releases that answered requests sent after `moment` (time.monotonic)."""
        return {version for sent_at, version in self.answers if sent_at > moment}

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class SteadyLoad:
    """`rate` GET requests a second through `url` from `clients` threads, each a keep-alive
    client as a browser or a service would have, until the block ends.

    Like a browser (and as RFC 9110 9.2.2 allows for idempotent requests), a client sends a GET
    once more, on a new connection, when the server closed the connection under it without
    answering: a server closes idle keep-alive connections when it likes (nginx's old workers
    do at a reload), and a request can cross that close on the wire."""

    def __init__(self, url: str, *, rate: float = 100.0, clients: int = 2, header: str = "X-Version") -> None:
        self.url = url
        self.rate = rate
        self.clients = clients
        self.header = header
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SteadyLoad:
        self._started = time.monotonic()
        for number in range(self.clients):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        self.report.seconds = time.monotonic() - self._started

    def _run(self, number: int) -> None:
        interval = self.clients / self.rate
        due = time.monotonic() + number * interval / self.clients
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                due += interval
                self._send(client)

    def _send(self, client: httpx.Client) -> None:
        sent_at = time.monotonic()
        retried = 0
        try:
            try:
                response = client.get(self.url)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                retried = 1
                response = client.get(self.url)
            outcome = response.headers.get(self.header) if response.status_code < 500 else None
            failure = None if outcome else f"HTTP {response.status_code} without {self.header}"
        except httpx.HTTPError as exc:
            outcome, failure = None, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.report.sent += 1
            self.report.retried += retried
            if outcome:
                self.report.versions[outcome] += 1
                self.report.answers.append((sent_at, outcome))
            if failure:
                self.report.failures.append(failure)



Release = Callable[[str], VersionedBackend]
"""The `release` fixture: starts one backend of a release."""
Traffic = Callable[..., TrafficDriver]
"""The `traffic` fixture: a driver of a managed proxy of an engine."""
Running = Callable[[TrafficDriver, list[Route]], RunningProxy]
"""The `running` fixture: the proxy prepared with routes and running."""
