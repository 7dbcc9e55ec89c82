"""HAProxy as the traffic driver: the configuration is written once, at `prepare`, with a fixed
number of server slots per route; every traffic change after that is a handful of runtime API
commands on the admin socket (`set server B/S addr|weight|state`). HAProxy applies each at
once to the next request it balances, without a reload and without a new process.

The routes' names, slots, addresses, weights and states are read from HAProxy itself (`show
servers state`), so any process can apply a change. Only the names and versions of the
backends, which HAProxy has no place for, are kept beside the configuration (routes.json).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opsplane.drivers.traffic.base import (
    Applied,
    Backend,
    ProxyConfigInvalid,
    ProxyError,
    Route,
    Split,
    check_routes,
    find_binary,
)
from opsplane.drivers.traffic.haproxy_plan import (
    Slot,
    SlotPlan,
    parse_route_name,
    parse_servers_state,
    plan_slots,
    render_haproxy,
    route_name,
    slot_number,
)
from opsplane.drivers.traffic.state import one_change_at_a_time, read_routes, write_routes
from opsplane.drivers.traffic.verify import count_versions

if TYPE_CHECKING:
    from opsplane.config.models import Proxy

CONFIG_FILE = "haproxy.cfg"
SLOTS = 32
_UNSAFE_PATH = re.compile(r"[\"\\$#\x00-\x1f]")
# sun_path holds 108 bytes; HAProxy binds to "PATH.PID.tmp" first and renames it, so it refuses
# a path longer than 97 bytes ("socket path ... too long (max 97)").
_SOCKET_PATH_MAX = 97
_ANSWER_TIMEOUT = 5.0


class HaproxyTraffic:
    """A managed HAProxy: its configuration in `directory`, its runtime API on the admin socket
    (`admin_socket` of the proxy, else `admin.sock` in `directory`)."""

    engine = "haproxy"

    def __init__(self, name: str, proxy: Proxy, *, directory: Path, slots: int = SLOTS) -> None:
        self.name = name
        self.directory = directory.resolve()
        self.admin_socket = Path(proxy.admin_socket).resolve() if proxy.admin_socket \
            else self.directory / "admin.sock"
        for path in (self.directory, self.admin_socket):
            if _UNSAFE_PATH.search(str(path)):
                raise ProxyError(f"proxy {name}: {path} has a character HAProxy's configuration cannot "
                                 "hold (quotes, backslash, $, # or control characters); choose another")
        if len(str(self.admin_socket).encode()) > _SOCKET_PATH_MAX:
            raise ProxyError(f"proxy {name}: the admin socket path {self.admin_socket} is longer than the "
                             f"{_SOCKET_PATH_MAX} bytes HAProxy takes for a unix socket's path; choose a "
                             "shorter directory or set admin_socket")
        self.binary = find_binary("haproxy", proxy.binary)
        self.version_header = proxy.version_header
        self.health = (proxy.host or "127.0.0.1", proxy.port) if proxy.port is not None else None
        self.slots = slots

    @property
    def config(self) -> Path:
        return self.directory / CONFIG_FILE

    def run_argv(self) -> list[str]:
        """HAProxy in the foreground (`-db`): one process, stopped by SIGTERM or SIGUSR1 (finish
        what is in flight first)."""
        return [self.binary, "-db", "-f", str(self.config)]

    def prepare(self, routes: Sequence[Route]) -> None:
        """Write the configuration HAProxy starts with, after `haproxy -c` accepted it: one
        frontend and backend per route, the routes' backends in the first slots."""
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            self._checked_candidate(routes).replace(self.config)
            write_routes(self.directory, routes)

    def check(self, routes: Sequence[Route]) -> None:
        """Whether HAProxy would take a configuration for `routes` (`haproxy -c`), changing
        nothing; ProxyConfigInvalid with its own words when it would not."""
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            self._checked_candidate(routes).unlink()

    def _checked_candidate(self, routes: Sequence[Route]) -> Path:
        """The configuration for `routes`, written beside the live one once `haproxy -c` took it."""
        resolved = [(route, [self._resolve(b) for b in route.backends]) for route in routes]
        candidate = self.directory / (CONFIG_FILE + ".next")
        candidate.write_text(render_haproxy(resolved, admin_socket=self.admin_socket, proxy_name=self.name,
                                            slots=self.slots, health=self.health))
        self._check(candidate)
        return candidate

    def apply(self, routes: Sequence[Route]) -> Applied:
        """Move every route's slots to its backends through the runtime API, then read the
        state back to confirm it. Raises ProxyError, before any command, for a route whose
        listen address HAProxy does not have (a new route needs a restart), and when HAProxy
        refuses a command or does not answer."""
        started = time.monotonic()
        routes = check_routes(routes)
        with one_change_at_a_time(self.directory):
            slots = self._slots()
            plans = self._plans(routes, slots)
            for plan in plans.values():
                for command in plan.commands:
                    self._command(command)
            self._confirm(routes, plans)
            write_routes(self.directory, routes)
        return Applied(engine=self.engine, how="runtime-api", seconds=time.monotonic() - started,
                       routes=routes)

    def current(self) -> list[Route]:
        """The routes as HAProxy runs them now: every slot that is not in maintenance, its
        address and its weight (0 when drained) read from the runtime API, named by what the
        last change recorded (a slot changed by someone else is named after itself)."""
        labels = {(route.service, self._address(b.host), b.port): b
                  for route in read_routes(self.directory) or [] for b in route.backends}
        by_backend: dict[str, list[Slot]] = {}
        for slot in self._slots():
            by_backend.setdefault(slot.backend, []).append(slot)
        found: list[Route] = []
        for haproxy_backend, slots in by_backend.items():
            parsed = parse_route_name(haproxy_backend)
            if parsed is None:
                continue
            service, host, port = parsed
            in_use = sorted((s for s in slots if s.state != "maint"), key=lambda s: slot_number(s.name))
            backends = tuple(_backend_of(s, labels.get((service, s.addr, s.port))) for s in in_use)
            found.append(Route(service=service, listen_host=host, listen_port=port, backends=backends))
        return found

    def verify(self, route: Route, *, requests: int = 200, path: str = "/", timeout: float = 10) -> Split:
        return count_versions(route, version_header=self.version_header, requests=requests, path=path,
                              timeout=timeout)

    # --- the steps ---------------------------------------------------------------------------

    def _check(self, candidate: Path) -> None:
        try:
            done = subprocess.run([self.binary, "-c", "-f", str(candidate)],  # noqa: S603 - argv list
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProxyError(f"proxy {self.name}: haproxy -c did not run: {exc}") from exc
        if done.returncode != 0:
            rejected = candidate.replace(self.directory / (CONFIG_FILE + ".rejected"))
            said = (done.stderr + done.stdout).replace(str(candidate), str(rejected)).splitlines()
            output = "\n".join(line for line in said if line.strip() and not line.startswith("[NOTICE]"))
            raise ProxyConfigInvalid(f"proxy {self.name}: haproxy -c refused the configuration, which was "
                                     f"not written (kept as {rejected}):\n{output}", output)

    def _resolve(self, backend: Backend) -> str:
        """The backend's IP address: the runtime API takes addresses, not names."""
        try:
            return _ip_address(backend.host)
        except OSError as exc:
            raise ProxyError(f"proxy {self.name}: backend {backend.name}'s host {backend.host!r} does not "
                             f"resolve ({exc}); HAProxy's runtime API needs an IP address") from exc

    @staticmethod
    def _address(host: str) -> str:
        try:
            return _ip_address(host)
        except OSError:
            return host

    def _plans(self, routes: tuple[Route, ...], slots: list[Slot]) -> dict[str, SlotPlan]:
        """Every route's plan, made before any command is sent, so a route HAProxy cannot carry
        stops the change before it starts. Routes HAProxy has that are not asked for are
        emptied (every slot to maintenance: their listen address answers 503)."""
        by_backend: dict[str, list[Slot]] = {}
        for slot in slots:
            by_backend.setdefault(slot.backend, []).append(slot)
        plans: dict[str, SlotPlan] = {}
        for route in routes:
            haproxy_backend = route_name(route)
            if haproxy_backend not in by_backend:
                known = ", ".join(sorted(b for b in by_backend if parse_route_name(b))) or "none"
                raise ProxyError(f"proxy {self.name}: HAProxy has no route {route.service} on "
                                 f"{route.listen_host}:{route.listen_port} (it has: {known}); a new route or "
                                 "listen address needs the proxy prepared and restarted")
            wanted = [(b, self._resolve(b)) for b in route.backends]
            plans[haproxy_backend] = plan_slots(haproxy_backend, by_backend[haproxy_backend], wanted)
        for haproxy_backend, backend_slots in by_backend.items():
            if haproxy_backend not in plans and parse_route_name(haproxy_backend):
                plans[haproxy_backend] = plan_slots(haproxy_backend, backend_slots, [])
        return plans

    def _confirm(self, routes: tuple[Route, ...], plans: dict[str, SlotPlan]) -> None:
        """Read the slots back: each placed backend at its address, weight and state, every
        other slot in maintenance."""
        slots = {(s.backend, s.name): s for s in self._slots()}
        for route in routes:
            haproxy_backend = route_name(route)
            for backend in route.backends:
                slot = slots[(haproxy_backend, plans[haproxy_backend].placed[backend.name])]
                if slot.port != backend.port or slot.effective_weight != backend.weight:
                    raise ProxyError(f"proxy {self.name}: after the change HAProxy has {haproxy_backend}/"
                                     f"{slot.name} at port {slot.port}, weight {slot.effective_weight} "
                                     f"({slot.state}), not {backend.name} at port {backend.port}, weight "
                                     f"{backend.weight}")

    def _slots(self) -> list[Slot]:
        return parse_servers_state(self._ask("show servers state"))

    def _command(self, command: str) -> None:
        answer = self._ask(command).strip()
        if answer and "no need to change" not in answer and "changed from" not in answer:
            raise ProxyError(f"proxy {self.name}: HAProxy refused `{command}`: {answer}")

    def _ask(self, command: str) -> str:
        """One command on the admin socket, and HAProxy's whole answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(_ANSWER_TIMEOUT)
                sock.connect(str(self.admin_socket))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except FileNotFoundError as exc:
            raise ProxyError(f"proxy {self.name}: HAProxy is not running (no admin socket at "
                             f"{self.admin_socket}); start it first (run_argv), then apply") from exc
        except OSError as exc:
            raise ProxyError(f"proxy {self.name}: HAProxy's admin socket {self.admin_socket} did not answer "
                             f"`{command}`: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")


def _ip_address(host: str) -> str:
    """`host` as an IP address, looked up when it is a name (OSError when it does not resolve)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


def _backend_of(slot: Slot, label: Backend | None) -> Backend:
    if label is None:
        return Backend(name=f"{slot.backend.partition(':')[0]}.{slot.name}", host=slot.addr, port=slot.port,
                       weight=slot.effective_weight, version="unknown")
    return Backend(name=label.name, host=label.host, port=slot.port, weight=slot.effective_weight,
                   version=label.version)
