"""HAProxy's side of a route, as pure functions: the configuration written at `prepare` (one
frontend and one backend per route, each backend a fixed number of server slots), and the
runtime API commands that move a backend's slots from what `show servers state` says to the
backends asked for.

A route's HAProxy frontend and backend are both named `SERVICE:HOST:PORT` after its listen
address, so the running configuration says which routes it has; a backend's slots are
`slot1`, `slot2`, ... A backend keeps its slot as long as it is in the route (slots are
matched by address), so a change never moves a backend and never restarts anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opsplane.drivers.traffic.base import Backend, ProxyError, Route, RouteInvalid, hostport

SLOT_PREFIX = "slot"
PARKED = ("127.0.0.1", 1)
"""Where a free slot points: a port nothing listens on, never used since the slot is in
maintenance."""

_HAPROXY_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")

SlotState = Literal["ready", "drain", "maint"]

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited, resolution and DNS-driven
# maintenance; forced and inherited drain. Bit 0x04 only records `disabled` in the file.
_MAINT_BITS = 0x01 | 0x02 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10


def route_name(route: Route) -> str:
    """The name of the route's frontend and backend: `SERVICE:HOST:PORT`."""
    name = f"{route.service}:{route.listen_host}:{route.listen_port}"
    if not _HAPROXY_NAME.match(name):
        raise RouteInvalid(f"route {route.service}: HAProxy names it after its listen address, and "
                           f"{route.listen_host!r} has characters a HAProxy name cannot hold; expected "
                           "an IP address or a host name")
    return name


def parse_route_name(name: str) -> tuple[str, str, int] | None:
    """(service, listen host, listen port) from a backend name `route_name` made; None for a
    backend opsplane did not name."""
    service, _, rest = name.partition(":")
    host, _, port = rest.rpartition(":")
    if not service or not host or not port.isdigit():
        return None
    return service, host, int(port)


def slot_name(number: int) -> str:
    return f"{SLOT_PREFIX}{number}"


def slot_number(name: str) -> int:
    """The number of slot `name`; 0 for a server opsplane did not name."""
    digits = name[len(SLOT_PREFIX):]
    return int(digits) if name.startswith(SLOT_PREFIX) and digits.isdigit() else 0


# --- the configuration -------------------------------------------------------------------


def render_haproxy(routes: Sequence[tuple[Route, Sequence[str]]], *, admin_socket: Path, proxy_name: str,
                   slots: int, health: tuple[str, int] | None = None) -> str:
    """The whole HAProxy configuration: each route with the IP address of each of its
    backends (`routes` pairs them), every backend `slots` server slots, the first ones holding
    the route's backends and the rest free (in maintenance); the admin socket; `GET /health`
    on `health`, the proxy's own address, when given."""
    lines = [
        f"# HAProxy configuration of proxy {proxy_name}, written by opsplane when the proxy is",
        "# prepared. Traffic changes go through the runtime API on the admin socket, never here.",
        "global",
        f'    stats socket "{admin_socket}" mode 600 level admin',
        "    stats timeout 10s",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 10s",
        # A request whose backend refused the connection (stopped), or closed it without a word
        # (stopping, or an idle connection it had just closed), is sent again, each time to
        # another server (`redispatch 1`). Only GET, HEAD and OPTIONS are sent again once they
        # reached a backend; see disable-l7-retry below.
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
    ]
    for route, addresses in routes:
        lines += ["", *_route_sections(route, addresses, slots)]
    if health is not None:
        lines += ["", "frontend opsplane-health", f"    bind {hostport(*health)}", "    monitor-uri /health"]
    return "\n".join(lines) + "\n"


def _route_sections(route: Route, addresses: Sequence[str], slots: int) -> list[str]:
    if len(route.backends) > slots:
        raise ProxyError(f"route {route.service} has {len(route.backends)} backends; the proxy holds at "
                         f"most {slots} per route")
    name = route_name(route)
    lines = [f"frontend {name}", f"    bind {hostport(*route.listen)}", f"    default_backend {name}", "",
             f"backend {name}", "    balance roundrobin",
             "    http-request disable-l7-retry if !METH_GET !METH_OPTIONS"]
    for number, (backend, address) in enumerate(zip(route.backends, addresses, strict=True), start=1):
        lines.append(f"    server {slot_name(number)} {hostport(address, backend.port)} "
                     f"weight {backend.weight}  # {backend.name} {backend.version}")
    first_free = len(route.backends) + 1
    if first_free <= slots:
        lines.append(f"    server-template {SLOT_PREFIX} {first_free}-{slots} {hostport(*PARKED)} disabled")
    return lines


# --- the runtime API ---------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One server slot of a HAProxy backend as `show servers state` reports it. `weight` is the
    configured weight; a drained or maintained slot takes no new requests whatever it is."""

    backend: str
    name: str
    addr: str
    port: int
    state: SlotState
    weight: int

    @property
    def effective_weight(self) -> int:
        return self.weight if self.state == "ready" else 0


def parse_servers_state(text: str) -> list[Slot]:
    """The slots in an answer to `show servers state`."""
    header: list[str] | None = None
    found: list[Slot] = []
    for line in text.splitlines():
        if line.startswith("# "):
            header = line[2:].split()
            continue
        if not line.strip() or header is None:
            continue
        row = dict(zip(header, line.split(), strict=False))
        try:
            admin = int(row["srv_admin_state"])
            state: SlotState = "maint" if admin & _MAINT_BITS else "drain" if admin & _DRAIN_BITS else "ready"
            found.append(Slot(backend=row["be_name"], name=row["srv_name"], addr=row["srv_addr"],
                              port=int(row["srv_port"]), state=state, weight=int(row["srv_uweight"])))
        except (KeyError, ValueError) as exc:
            raise ProxyError(f"HAProxy's `show servers state` has a line opsplane cannot read: {line!r}") \
                from exc
    return found


@dataclass(frozen=True)
class SlotPlan:
    """Where each backend of a route goes (`placed`: backend name to slot name) and the runtime
    API commands that take the HAProxy backend there, in order: every slot that gains traffic
    first, then those that lose it, so capacity never dips during a change."""

    placed: dict[str, str]
    commands: tuple[str, ...]


def plan_slots(haproxy_backend: str, slots: Sequence[Slot],
               wanted: Sequence[tuple[Backend, str]]) -> SlotPlan:
    """The plan that gives `haproxy_backend`'s `slots` the `wanted` backends (each with its IP
    address): a backend already in a slot (same address and port) stays there, a new one
    takes a free slot (maintenance first, then one whose backend is leaving), and every slot
    left over goes to maintenance."""
    placed = _place(haproxy_backend, slots, wanted)
    by_name = {s.name: s for s in slots}
    gaining: list[tuple[int, list[str]]] = []
    losing: list[tuple[int, list[str]]] = []
    for backend, address in wanted:
        slot = by_name[placed[backend.name]]
        steps = _slot_steps(f"{haproxy_backend}/{slot.name}", slot, address, backend)
        if steps:
            same_place = (slot.addr, slot.port) == (address, backend.port)
            delta = backend.weight - (slot.effective_weight if same_place else 0)
            (gaining if delta > 0 else losing).append((delta, steps))
    gaining.sort(key=lambda item: -item[0])
    losing.sort(key=lambda item: -item[0])
    leaving = [[f"set server {haproxy_backend}/{s.name} state maint"]
               for s in slots if s.name not in placed.values() and s.state != "maint"]
    commands = [c for _, steps in gaining for c in steps] + [c for _, steps in losing for c in steps]
    commands += [c for steps in leaving for c in steps]
    return SlotPlan(placed=placed, commands=tuple(commands))


def _place(haproxy_backend: str, slots: Sequence[Slot],
           wanted: Sequence[tuple[Backend, str]]) -> dict[str, str]:
    ordered = sorted(slots, key=lambda s: (s.state == "maint", slot_number(s.name)))
    placed: dict[str, str] = {}
    taken: set[str] = set()
    for backend, address in wanted:
        for slot in ordered:
            if slot.name not in taken and (slot.addr, slot.port) == (address, backend.port):
                placed[backend.name] = slot.name
                taken.add(slot.name)
                break
    free = [s for s in sorted(slots, key=lambda s: (s.state != "maint", slot_number(s.name)))
            if s.name not in taken]
    newcomers = [backend for backend, _ in wanted if backend.name not in placed]
    if len(newcomers) > len(free):
        raise ProxyError(f"HAProxy backend {haproxy_backend} has {len(slots)} slots; {len(wanted)} backends "
                         "do not fit. Prepare the proxy with more slots and restart it")
    for backend, slot in zip(newcomers, free, strict=False):
        placed[backend.name] = slot.name
    return placed


def _slot_steps(target: str, slot: Slot, address: str, backend: Backend) -> list[str]:
    steps: list[str] = []
    if (slot.addr, slot.port) != (address, backend.port):
        if slot.state != "maint":
            steps.append(f"set server {target} state maint")
        steps.append(f"set server {target} addr {address} port {backend.port}")
        slot = Slot(slot.backend, slot.name, address, backend.port, "maint", slot.weight)
    if slot.weight != backend.weight:
        steps.append(f"set server {target} weight {backend.weight}")
    state: SlotState = "ready" if backend.weight > 0 else "drain"
    if slot.state != state:
        steps.append(f"set server {target} state {state}")
    return steps
