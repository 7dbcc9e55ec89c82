"""The comparison: Prometheus's blackbox exporter, driven through `/probe` as Prometheus would.

`BlackboxDriver` plays Prometheus's part: every target gets a fixed slot in the interval
(spread evenly, like opsplane's scheduler), and each slot becomes one
`GET /probe?module=http_2xx&target=<url>` on a pool of keep-alive connections, so the cost
of talking to the exporter stays on the exporter's side of the socket as small as it can be
and the driver's own work stays in this (separate) process.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from _common import Child, Children, program_version, wait_for_http

MODULE = "http_2xx"
CONFIG = f"""\
modules:
  {MODULE}:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      follow_redirects: false
"""
_SUCCESS = b"\nprobe_success 1\n"
_FAILURE = b"\nprobe_success 0\n"


def blackbox_binary() -> str | None:
    return shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")


def blackbox_version(binary: str) -> str:
    return program_version([binary, "--version"], r"version (\S+?)[ ,]")


def start_blackbox(children: Children, tmp: Path, binary: str, port: int) -> Child:
    """Start the exporter on 127.0.0.1:`port` with the `http_2xx` module; wait until ready."""
    config = tmp / "blackbox.yml"
    config.write_text(CONFIG)
    child = Child("blackbox exporter",
                  [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                   "--log.level=warn"],
                  log=tmp / f"blackbox-{port}.log", cwd=tmp)
    children.start(child)
    wait_for_http(f"http://127.0.0.1:{port}/-/healthy", child, timeout=15)
    return child


@dataclass
class DriverCounts:
    """Cumulative counts since the driver started; subtract two snapshots for a window."""

    sent: int = 0
    answered: int = 0  # /probe answered 200
    succeeded: int = 0  # ... with probe_success 1
    failed: int = 0  # ... with probe_success 0
    errors: int = 0  # /probe itself failed: connection lost, not 200, unreadable

    def snapshot(self) -> DriverCounts:
        return replace(self)


class BlackboxDriver:
    """Asks the exporter at 127.0.0.1:`port` to probe each of `urls` once per `interval`.

    Requests go out on idle keep-alive connections; when none is idle a new one is opened,
    up to `connections`, after which requests wait their turn (and count as late).
    """

    def __init__(
        self, port: int, urls: Sequence[str], *, interval: float, connections: int = 512
    ) -> None:
        self.port = port
        self.interval = interval
        self.connections = connections
        host = f"127.0.0.1:{port}"
        self._requests = [
            (f"GET /probe?module={MODULE}&target={quote(url, safe='')} HTTP/1.1\r\n"
             f"Host: {host}\r\nUser-Agent: opsplane-bench\r\n"
             f"Accept: text/plain;version=0.0.4\r\n"
             f"X-Prometheus-Scrape-Timeout-Seconds: {interval:g}\r\n\r\n").encode()
            for url in urls
        ]
        self.counts = DriverCounts()
        # How late each request went out against its slot, in the order sent, so that
        # lateness[a.sent:b.sent] belongs to the window between snapshots a and b.
        self.lateness: list[float] = []
        self.last_error = ""
        self._idle: list[_ExporterConnection] = []
        self._waiting: deque[tuple[bytes, float]] = deque()
        self._open = 0  # connections open or opening
        self._opening: set[asyncio.Task[None]] = set()
        self._all: set[_ExporterConnection] = set()

    async def run(self) -> None:
        """Drive until cancelled; every connection is closed on the way out."""
        loop = asyncio.get_running_loop()
        count = len(self._requests)
        step = self.interval / count
        start = loop.time()
        slot = 0
        try:
            while True:
                now = loop.time()
                # Every slot that is due goes out now; then sleep until the next one.
                while start + slot * step <= now:
                    self._dispatch(self._requests[slot % count], start + slot * step)
                    slot += 1
                await asyncio.sleep(max(start + slot * step - loop.time(), 0.0005))
        finally:
            for task in self._opening:
                task.cancel()
            for connection in self._all:
                connection.close()

    def _dispatch(self, request: bytes, due: float) -> None:
        if self._idle:
            self._send(self._idle.pop(), request, due)
            return
        self._waiting.append((request, due))
        self._grow()

    def _grow(self) -> None:
        if self._waiting and self._open < self.connections:
            self._open += 1
            task = asyncio.get_running_loop().create_task(self._connect())
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _ExporterConnection(self), "127.0.0.1", self.port)
        except OSError as exc:
            self._open -= 1
            self.counts.errors += 1
            self.last_error = f"cannot connect to the exporter: {exc}"

    def _send(self, connection: _ExporterConnection, request: bytes, due: float) -> None:
        self.lateness.append(asyncio.get_running_loop().time() - due)
        self.counts.sent += 1
        connection.send(request)

    def _free(self, connection: _ExporterConnection) -> None:
        if self._waiting:
            self._send(connection, *self._waiting.popleft())
        else:
            self._idle.append(connection)

    # --- called by the connections ---

    def connected(self, connection: _ExporterConnection) -> None:
        self._all.add(connection)
        self._free(connection)

    def answered(self, connection: _ExporterConnection | None, status: int, body: bytes) -> None:
        """An answer came on `connection` (None: on one the exporter is closing)."""
        counts = self.counts
        if status != 200:
            counts.errors += 1
            self.last_error = f"/probe answered HTTP {status}: {body[:200]!r}"
        else:
            counts.answered += 1
            if _SUCCESS in body:
                counts.succeeded += 1
            else:
                counts.failed += 1
                if _FAILURE not in body:
                    self.last_error = f"no probe_success in the answer: {body[:200]!r}"
        if connection is not None:
            self._free(connection)

    def lost(self, connection: _ExporterConnection, busy: bool, reason: str) -> None:
        self._open -= 1
        self._all.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        if busy:
            self.counts.errors += 1
            self.last_error = reason
        self._grow()


class _ExporterConnection(asyncio.Protocol):
    """One keep-alive connection to the exporter, one request at a time."""

    def __init__(self, driver: BlackboxDriver) -> None:
        self._driver = driver
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._driver.connected(self)

    def send(self, request: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            self._driver.lost(self, True, "connection closed before the request")
            return
        self._busy = True
        self._transport.write(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            response = _parse_response(self._buffer)
        except ValueError as exc:
            self._buffer.clear()
            self.close()
            self._driver.lost(self, self._busy, f"unreadable answer from the exporter: {exc}")
            self._busy = False
            return
        if response is None:
            return
        status, body, keep, used = response
        del self._buffer[:used]
        self._busy = False
        if not keep:
            self.close()  # connection_lost tells the driver; do not hand it out again
            self._driver.answered(None, status, body)
            return
        self._driver.answered(self, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self._driver.lost(self, self._busy, f"connection to the exporter lost: {exc}")
        self._busy = False


def _parse_response(buffer: bytearray) -> tuple[int, bytes, bool, int] | None:
    """Status, body, keep-alive and bytes used of the first complete HTTP/1.1 response in
    `buffer`; None while incomplete. Raises ValueError for what is not HTTP."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    chunked = False
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            keep = "close" not in value.lower()
    at = end + 4
    if not chunked:
        if length is None:
            raise ValueError("neither Content-Length nor chunked")
        if len(buffer) < at + length:
            return None
        return status, bytes(buffer[at:at + length]), keep, at + length
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        at = line_end + 2
        if len(buffer) < at + size + 2:
            return None
        if size == 0:  # the exporter sends no trailers
            return status, b"".join(parts), keep, at + 2
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2
