"""A real nginx on loopback answering `200 ok` on every path: a fast server in a process of
its own, for tests that time probes and must not measure the server's own queueing."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from opsplane.drivers.sandbox.ports import free_port
from tests.support.polling import wait_for

_CONF = """\
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx on PATH or in /usr/sbin (Debian puts it there, outside a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


class LocalNginx:
    """nginx (one process) on 127.0.0.1 on a free port, its files under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> LocalNginx:
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed (scripts/bootstrap.sh installs it)"
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(_CONF.format(dir=self.directory, port=self.port))
        self._process = subprocess.Popen(
            [binary, "-p", str(self.directory), "-c", str(conf), "-e", str(self.directory / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, "nginx to listen", timeout=15)
        return self

    def _answers(self) -> bool:
        assert self._process is not None and self._process.poll() is None, \
            (self.directory / "error.log").read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
