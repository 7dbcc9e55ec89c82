"""nginx as the traffic driver: routes rendered into one configuration file, checked by
`nginx -t` before it replaces the one in use, and made live by a graceful reload.

A reload starts new worker processes with the new configuration; the old ones stop accepting
connections, finish the requests they have and exit. `apply` returns once every worker that
still accepts connections is a new one, so from then on every new request sees the routes.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from opsplane.drivers.traffic.base import (
    Applied,
    ProxyConfigInvalid,
    ProxyError,
    Route,
    Split,
    check_routes,
    find_binary,
    hostport,
)
from opsplane.drivers.traffic.state import one_change_at_a_time, read_routes, write_atomically, write_routes
from opsplane.drivers.traffic.verify import count_versions

if TYPE_CHECKING:
    from opsplane.config.models import Proxy

CONFIG_FILE = "nginx.conf"
_UNSAFE_PATH = re.compile(r"[\"\\$;{}#\x00-\x1f]")
_TROUBLE = re.compile(r"\[(emerg|alert)\]")
_COMMAND_TIMEOUT = 30.0

UPSTREAM_KEEPALIVE_TIMEOUT = "4s"
"""How long nginx keeps an idle connection to a backend: under uvicorn's 5 s, so nginx always
closes an idle connection before the backend does and never sends a request on one the
backend is closing."""


def render_nginx(routes: Sequence[Route], *, directory: Path, proxy_name: str,
                 health: tuple[str, int] | None = None, workers: int = 2) -> str:
    """The whole nginx configuration for `routes`: one upstream and one server per route, and
    `GET /health` on `health` (the proxy's own address) when given. Every path is under
    `directory`."""
    where = directory.resolve()

    def path(name: str) -> str:
        return f'"{where / name}"'

    lines = [
        f"# nginx configuration of proxy {proxy_name}, written by opsplane at each traffic change;",
        "# edits are replaced by the next one.",
        "daemon off;",
        "master_process on;",
        f"worker_processes {workers};",
        f"pid {path('nginx.pid')};",
        f"lock_file {path('nginx.lock')};",
        f"error_log {path('error.log')} warn;",
        # A connection that never ends (a stream, a long poll) must not keep an old worker, and
        # so the previous configuration, alive for ever after a reload.
        "worker_shutdown_timeout 30s;",
        "events { worker_connections 1024; }",
        "http {",
        "    access_log off;",
        f"    client_body_temp_path {path('temp/body')};",
        f"    proxy_temp_path {path('temp/proxy')};",
        f"    fastcgi_temp_path {path('temp/fastcgi')};",
        f"    uwsgi_temp_path {path('temp/uwsgi')};",
        f"    scgi_temp_path {path('temp/scgi')};",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_connect_timeout 2s;",
        # A request goes to the next backend when its backend refused the connection, broke it
        # before answering, did not connect or answer in time, or said it cannot serve (502,
        # 503: a backend shutting down). nginx never resends a POST, PATCH or LOCK that reached
        # a backend (no `non_idempotent`): the backend may have acted on it. A 500 is the
        # application's answer and is passed on.
        "    proxy_next_upstream error timeout http_502 http_503;",
        "    proxy_next_upstream_tries 3;",
        "    proxy_next_upstream_timeout 10s;",
    ]
    for route in routes:
        lines += ["", *_route_block(route)]
    if health is not None:
        lines += ["", *_health_block(*health)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _route_block(route: Route) -> list[str]:
    listen = f"    server {{\n        listen {hostport(*route.listen)};"
    if not route.backends:
        return [f"    # {route.service}: no backends", listen,
                "        location / { return 502; }", "    }"]
    upstream = [f"    upstream {route.service} {{"]
    for backend in route.backends:
        address = hostport(*backend.address)
        state = f"weight={backend.weight}" if backend.weight > 0 else "down"
        upstream.append(f"        server {address} {state};  # {backend.name} {backend.version}")
    upstream += ["        keepalive 16;", f"        keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};", "    }"]
    return [*upstream, listen, f"        location / {{ proxy_pass http://{route.service}; }}", "    }"]


def _health_block(host: str, port: int) -> list[str]:
    return ["    server {",
            f"        listen {hostport(host, port)};",
            '        location = /health { default_type text/plain; return 200 "ok\\n"; }',
            "        location / { return 404; }",
            "    }"]


class NginxTraffic:
    """A managed nginx: its configuration, pid file, logs and temporary files in `directory`."""

    engine = "nginx"

    def __init__(self, name: str, proxy: Proxy, *, directory: Path, workers: int = 2,
                 live_timeout: float = 10.0) -> None:
        if _UNSAFE_PATH.search(str(directory.resolve())):
            raise ProxyError(f"proxy {name}: directory {directory} has a character nginx's configuration "
                             "cannot hold (quotes, backslash, $;{{}}# or control characters); choose another")
        self.name = name
        self.directory = directory.resolve()
        self.binary = find_binary("nginx", proxy.binary)
        self.version_header = proxy.version_header
        self.health = (proxy.host or "127.0.0.1", proxy.port) if proxy.port is not None else None
        self.workers = workers
        self.live_timeout = live_timeout

    @property
    def config(self) -> Path:
        return self.directory / CONFIG_FILE

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def _nginx(self, *args: str, config: Path | None = None) -> list[str]:
        return [self.binary, "-p", str(self.directory), "-c", str(config or self.config),
                "-e", str(self.error_log), *args]

    def run_argv(self) -> list[str]:
        """nginx in the foreground (`daemon off` is in the file), master and workers."""
        return self._nginx()

    def prepare(self, routes: Sequence[Route]) -> None:
        """Write the configuration nginx starts with, after `nginx -t` accepted it."""
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            (self.directory / "temp").mkdir(parents=True, exist_ok=True)
            candidate = self._checked(routes)
            candidate.replace(self.config)
            write_routes(self.directory, routes)

    def check(self, routes: Sequence[Route]) -> None:
        """Whether nginx would take the configuration for `routes` (`nginx -t`), changing nothing;
        ProxyConfigInvalid with nginx's own words when it would not."""
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            self._checked(routes).unlink()

    def apply(self, routes: Sequence[Route]) -> Applied:
        """Check the new configuration with `nginx -t`, put it in place, reload nginx gracefully
        and return once only new workers accept connections. ProxyConfigInvalid leaves the
        configuration in use untouched; a reload nginx refuses (an address it cannot bind)
        puts the previous file back and raises ProxyError."""
        started = time.monotonic()
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            candidate = self._checked(routes)
            master = self._master()
            before = self._workers(master)
            previous = self.config.read_text()
            log_offset = self._log_size()
            candidate.replace(self.config)
            try:
                self._run(self._nginx("-s", "reload"), "reload")
                self._wait_live(master, set(before), log_offset)
            except ProxyError:
                write_atomically(self.config, previous)
                raise
            write_routes(self.directory, routes)
        return Applied(engine=self.engine, how="reload", seconds=time.monotonic() - started, routes=routes)

    def current(self) -> list[Route]:
        """The routes of the configuration nginx was last prepared with or reloaded into."""
        found = read_routes(self.directory)
        if found is None:
            raise ProxyError(f"proxy {self.name} was never prepared: no {self.directory}/routes.json")
        return found

    def verify(self, route: Route, *, requests: int = 200, path: str = "/", timeout: float = 10) -> Split:
        return count_versions(route, version_header=self.version_header, requests=requests, path=path,
                              timeout=timeout)

    # --- the steps ---------------------------------------------------------------------------

    def _checked(self, routes: tuple[Route, ...]) -> Path:
        """The configuration for `routes` written beside the one in use, once `nginx -t` has
        accepted it; a refused one is kept as nginx.conf.rejected for a person to read."""
        text = render_nginx(routes, directory=self.directory, proxy_name=self.name, health=self.health,
                            workers=self.workers)
        (self.directory / "temp").mkdir(parents=True, exist_ok=True)
        candidate = self.directory / (CONFIG_FILE + ".next")
        candidate.write_text(text)
        done = self._run(self._nginx("-t", "-q", config=candidate), "check", check=False)
        if done.returncode != 0:
            rejected = candidate.replace(self.directory / (CONFIG_FILE + ".rejected"))
            output = (done.stderr + done.stdout).strip().replace(str(candidate), str(rejected))
            raise ProxyConfigInvalid(f"proxy {self.name}: nginx -t refused the new configuration, which "
                                     f"was not applied (kept as {rejected}):\n{output}", output)
        return candidate

    def _run(self, argv: list[str], what: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603 - argv list
                                  timeout=_COMMAND_TIMEOUT, cwd=self.directory)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProxyError(f"proxy {self.name}: nginx {what} did not run: {exc}") from exc
        if check and done.returncode != 0:
            raise ProxyError(f"proxy {self.name}: nginx {what} failed (exit {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()}")
        return done

    def _master(self) -> psutil.Process:
        pid_file = self.directory / "nginx.pid"
        try:
            pid = int(pid_file.read_text().strip())
            master = psutil.Process(pid)
            if "nginx" in master.name():
                return master
        except (OSError, ValueError, psutil.Error):
            pass
        raise ProxyError(f"proxy {self.name}: nginx is not running (no live master in {pid_file}); "
                         "start it first (run_argv), then apply")

    def _workers(self, master: psutil.Process) -> dict[int, bool]:
        """Each worker's pid, and whether it still accepts connections (an old worker after a
        reload calls itself `worker process is shutting down`)."""
        workers: dict[int, bool] = {}
        try:
            children = master.children()
        except psutil.Error as exc:
            raise ProxyError(f"proxy {self.name}: nginx's master (pid {master.pid}) went away") from exc
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "worker process" in title:
                workers[child.pid] = "shutting down" not in title
        return workers

    def _wait_live(self, master: psutil.Process, before: set[int], log_offset: int) -> None:
        deadline = time.monotonic() + self.live_timeout
        while True:
            trouble = self._trouble_since(log_offset)
            if trouble:
                raise ProxyError(f"proxy {self.name}: nginx kept its previous configuration: {trouble}")
            accepting = {pid for pid, takes in self._workers(master).items() if takes}
            if accepting and not accepting & before:
                return
            if time.monotonic() > deadline:
                raise ProxyError(f"proxy {self.name}: nginx did not start workers with the new "
                                 f"configuration within {self.live_timeout:g} s; see {self.error_log}")
            time.sleep(0.005)

    def _log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def _trouble_since(self, offset: int) -> str:
        try:
            with open(self.error_log, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "; ".join(line.split("] ", 1)[-1] for line in text.splitlines() if _TROUBLE.search(line))
