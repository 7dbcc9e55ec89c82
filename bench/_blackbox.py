"""The comparison: Prometheus's blackbox exporter, driven through `/probe` as Prometheus would.

`BlackboxDriver` plays Prometheus's part: every target gets a fixed slot in the interval
(spread evenly, like opsplane's scheduler), and each slot becomes one
`GET /probe?module=http_2xx&target=<url>` on a pool of keep-alive connections, so the cost
of talking to the exporter stays on the exporter's side of the socket as small as it can be
and the driver's own work stays in this (separate) process.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
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
    """Asks the exporter at 127.0.0.1:`port` to probe each of `urls` once per `interval`."""

    def __init__(
        self, port: int, urls: Sequence[str], *, interval: float, connections: int = 64
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
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

    async def run(self) -> None:
        """Drive until cancelled."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self.connections)]
        try:
            await self._schedule()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        count = len(self._requests)
        step = self.interval / count
        start = loop.time()
        slot = 0
        while True:
            now = loop.time()
            # Every slot that is due goes out now; then sleep until the next one.
            while start + slot * step <= now:
                self._queue.put_nowait((self._requests[slot % count], start + slot * step))
                slot += 1
            await asyncio.sleep(max(start + slot * step - loop.time(), 0.0005))

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        counts = self.counts
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                request, due = await self._queue.get()
                try:
                    if writer is None or reader is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    self.lateness.append(loop.time() - due)
                    counts.sent += 1
                    writer.write(request)
                    status, body, keep = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    counts.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
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
                if not keep and writer is not None:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the connection stays open, for one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
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
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from the exporter
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(p[:-2] for p in parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep = False
    return status, body, keep
