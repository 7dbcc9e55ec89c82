"""The probe targets: one lightweight server answering `200 ok` on every `/t/<i>` path.

nginx (one worker, its own prefix and configuration in the run's temporary directory) when
it is installed; otherwise this file run as a script, a small asyncio server. Targets are
spread over a few listen ports so that no single accept queue limits the connection rate.

    python bench/_targets.py PORT [PORT ...]     # the fallback server, for a manual look
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import Child, Children, program_version, wait_for_http

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
worker_rlimit_nofile 65536;

events {{
    worker_connections 32768;
    multi_accept on;
}}

http {{
    access_log off;
    log_not_found off;
    server_tokens off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;

    server {{
{listens}
        location /t/ {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class TargetServer:
    """A running target server: what it is, and the URL of target `i`."""

    kind: str  # "nginx 1.22.1" or "asyncio (bench/_targets.py)"
    ports: tuple[int, ...]
    child: Child

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/t/{index}"

    def urls(self, count: int) -> list[str]:
        return [self.url(i) for i in range(count)]


def start_targets(children: Children, tmp: Path, ports: Sequence[int]) -> TargetServer:
    """Start the target server on `ports` and wait until every port answers."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is not None:
        listens = "\n".join(f"        listen 127.0.0.1:{port} backlog=4096;" for port in ports)
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, listens=listens))
        version = program_version([nginx, "-v"], r"nginx/(\S+)")
        child = Child("nginx", [nginx, "-p", str(tmp), "-c", str(conf),
                                "-e", str(tmp / "nginx-error.log")],
                      log=tmp / "nginx.log", cwd=tmp)
        kind = f"nginx {version} (1 worker)"
    else:
        child = Child("target server", [sys.executable, str(Path(__file__).resolve()),
                                        *map(str, ports)], log=tmp / "targets.log", cwd=tmp)
        kind = "asyncio server (bench/_targets.py)"
    server = TargetServer(kind, tuple(ports), children.start(child))
    for i in range(len(ports)):
        wait_for_http(server.url(i), child, timeout=15)
    return server


# --- the fallback server ---------------------------------------------------------------------

_OK_CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
             b"Connection: close\r\n\r\nok\n")
_OK_KEEP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Target(asyncio.Protocol):
    """Answers each request head (requests have no body here) and closes when asked."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            path = request_line[1] if len(request_line) > 1 else b""
            if not path.startswith(b"/t/"):
                transport.write(_NOT_FOUND)
                transport.close()
                return
            if b"connection: close" in head.lower() or request_line[-1] == b"HTTP/1.0":
                transport.write(_OK_CLOSE)
                transport.close()
                return
            transport.write(_OK_KEEP)


async def _serve(ports: Sequence[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Target, "127.0.0.1", port, backlog=4096)
               for port in ports]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: Sequence[str]) -> None:
    ports = [int(arg) for arg in argv]
    if not ports:
        raise SystemExit("usage: python bench/_targets.py PORT [PORT ...]")
    try:
        import uvloop

        uvloop.run(_serve(ports))
    except ImportError:
        asyncio.run(_serve(ports))


if __name__ == "__main__":
    main(sys.argv[1:])
