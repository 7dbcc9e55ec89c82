"""Real HTTP(S) servers on loopback, each in a thread of the test process.

`LocalHttpServer` answers each path with a scripted `Reply` (status, body, framing, delay)
and records the requests it received; `HangingServer` accepts connections and never
answers; `closed_port()` is a port nothing listens on.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal

from opsplane.drivers.sandbox.ports import free_port


@dataclass(frozen=True)
class Reply:
    """What the server sends for one path."""

    status: int = 200
    body: bytes = b"ok"
    content_type: str = "text/plain"
    framing: Literal["length", "chunked", "close"] = "length"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    chunk_size: int = 7
    echo_headers: bool = False  # the body is the request's headers as JSON, names in lower case


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class _Script:
    routes: dict[str, Reply]
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer()

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        script = self.server.script
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        script.seen.append(Seen(self.command, self.path,
                                {k.lower(): v for k, v in self.headers.items()}, body))
        reply = script.routes.get(self.path.split("?")[0], Reply(404, b"not found"))
        if reply.echo_headers:
            reply = replace(reply, content_type="application/json",
                            body=json.dumps({"headers": script.seen[-1].headers}).encode())
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.framing == "length":
            self.send_header("Content-Length", str(len(reply.body)))
        elif reply.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        if reply.framing == "chunked":
            body = reply.body
            for start in range(0, len(body), reply.chunk_size):
                piece = body[start:start + reply.chunk_size]
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        else:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: _Script

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early (timeouts, rejected certificates) are expected


class LocalHttpServer:
    """An HTTP server on 127.0.0.1; HTTPS when given a certificate and key."""

    def __init__(
        self,
        routes: dict[str, Reply] | None = None,
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.script = _Script(dict(routes or {"/": Reply()}))
        self.tls = cert_file is not None
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.script = self.script
        self.server_names: list[str | None] = []  # SNI names clients sent
        if cert_file is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def seen(self) -> list[Seen]:
        return self.script.seen

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> LocalHttpServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class HangingServer:
    """Accepts TCP connections and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()


class RawServer:
    """Reads a request, sends `response` byte for byte, and closes: for malformed answers."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.response)
                except OSError:
                    pass

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()


def closed_port() -> int:
    """A loopback port that refuses connections: bound once, then released."""
    return free_port()
