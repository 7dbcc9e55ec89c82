"""The traffic boundary: what a proxy in front of a service is told, behind one interface.

A `Route` is one service as the proxy serves it: the address it listens on and the backends
it spreads requests over, each with a weight. `TrafficDriver.apply` makes a running proxy use
a set of routes (nginx by a checked configuration and a graceful reload, HAProxy through its
runtime API), `current` reads back what it uses, and `verify` proves a split on live answers:
every backend names its release in a response header (`Proxy.version_header`).

`open_traffic(name, proxy, directory=...)` returns the driver the proxy's `engine` names.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from opsplane.errors import OpsplaneError

MAX_WEIGHT = 256
"""The largest weight both engines take (HAProxy's limit; nginx takes more)."""

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")
# A host goes into a configuration file: nothing that could end a word, a directive or a
# block there. Whether the rest is a valid address is for the proxy's own check to say.
_HOST = re.compile(r"^[^\s;{}#'\"\\$`]{1,253}$")


class ProxyError(OpsplaneError):
    """The proxy refused a change or did not answer; the message says which proxy and why."""


class ProxyConfigInvalid(ProxyError):
    """The proxy's own check (`nginx -t`, `haproxy -c`) refused a configuration; the one in
    place before stays in place. `output` is what the check printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class RouteInvalid(OpsplaneError):
    """A route, backend or split that no proxy could be asked to carry out."""

    exit_code = 3


@dataclass(frozen=True)
class Backend:
    """One instance of a release behind a route. `weight` 0..256 is its share relative to the
    other backends of the route; 0 takes no new requests (those in flight finish)."""

    name: str  # e.g. "catalog.0" or "catalog@v2.1", unique within a route
    host: str
    port: int
    weight: int
    version: str

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name):
            raise RouteInvalid(f"backend name {self.name!r} is not valid; expected letters, digits and "
                               "._@:+- (at most 128 characters), such as 'catalog.0' or 'catalog@v2.1'")
        if not _HOST.match(self.host):
            raise RouteInvalid(f"backend {self.name}: host {self.host!r} cannot go into a proxy's "
                               "configuration; expected an address or a host name without spaces, quotes "
                               "or any of ;{}#$\\`")
        _check_port(self.port, f"backend {self.name}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) \
                or not 0 <= self.weight <= MAX_WEIGHT:
            raise RouteInvalid(f"backend {self.name}: weight {self.weight!r} is out of range; expected "
                               f"an integer from 0 (no new requests) to {MAX_WEIGHT}")
        if not _VERSION.match(self.version):
            raise RouteInvalid(f"backend {self.name}: version {self.version!r} is not valid; expected "
                               "letters, digits and ._- as in run.version, such as 'v2.1'")

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


@dataclass(frozen=True)
class Route:
    """A service as a proxy serves it: it listens on `listen_host:listen_port` and spreads the
    requests over `backends` by weight."""

    service: str
    listen_host: str
    listen_port: int
    backends: tuple[Backend, ...] = ()

    def __post_init__(self) -> None:
        if not _SERVICE.match(self.service):
            raise RouteInvalid(f"route service {self.service!r} is not valid; expected an inventory "
                               "name (lower-case letters, digits and _.-)")
        if not _HOST.match(self.listen_host):
            raise RouteInvalid(f"route {self.service}: listen host {self.listen_host!r} cannot go into "
                               "a proxy's configuration; expected an address such as 127.0.0.1")
        _check_port(self.listen_port, f"route {self.service}")
        object.__setattr__(self, "backends", tuple(self.backends))
        names = [b.name for b in self.backends]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise RouteInvalid(f"route {self.service}: backend names must be unique; "
                               f"{', '.join(twice)} appear more than once")
        addresses = [b.address for b in self.backends]
        doubled = sorted({f"{h}:{p}" for h, p in addresses if addresses.count((h, p)) > 1})
        if doubled:
            raise RouteInvalid(f"route {self.service}: two backends share the address "
                               f"{', '.join(doubled)}; each backend is one instance")

    @property
    def listen(self) -> tuple[str, int]:
        return self.listen_host, self.listen_port

    def live_backends(self) -> tuple[Backend, ...]:
        """The backends that take new requests (weight above 0)."""
        return tuple(b for b in self.backends if b.weight > 0)


def _check_port(port: object, owner: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RouteInvalid(f"{owner}: port {port!r} is out of range; expected 1 to 65535")


def check_routes(routes: Sequence[Route]) -> tuple[Route, ...]:
    """The routes as a tuple, once no two of them name the same service or listen address."""
    seen_services: set[str] = set()
    seen_listens: dict[tuple[str, int], str] = {}
    for route in routes:
        if route.service in seen_services:
            raise RouteInvalid(f"service {route.service} has two routes; a proxy carries one per service")
        seen_services.add(route.service)
        other = seen_listens.get(route.listen)
        if other is not None:
            raise RouteInvalid(f"routes {other} and {route.service} both listen on "
                               f"{hostport(*route.listen)}; each needs an address of its own")
        seen_listens[route.listen] = route.service
    return tuple(routes)


def hostport(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# --- splits ------------------------------------------------------------------------------

SPLIT_TOLERANCE = 1.0
"""How far, in percentage points, `split_weights` may land from the share asked for."""

_CLOSE_ENOUGH = 0.01


def split_weights(percent: float, stable: int, candidate: int) -> tuple[int, int]:
    """Integer weights `(stable, candidate)`, one for each backend of its side, so that the
    `candidate` backends together get `percent` % of requests: exactly at 0 and 100 (the other
    side gets weight 0), within one percentage point in between, where both sides keep some
    traffic (weights 1..256). Of the pairs that come within 0.01 points the one with the
    smallest stable weight is chosen, so 50 % is 1:1 and 5 % one candidate against one stable
    backend is 19:1.

    RouteInvalid when the share is outside 0..100, a side that must take traffic has no
    backends, or no weights up to 256 come within a point (a tiny share spread over many
    candidate backends)."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent) \
            or not 0 <= percent <= 100:
        raise RouteInvalid(f"candidate share {percent!r} is out of range; expected 0 to 100 (percent)")
    for count, side in ((stable, "stable"), (candidate, "candidate")):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise RouteInvalid(f"{side} backend count {count!r} is not valid; expected 0 or more")
    if percent < 100 and stable == 0:
        raise RouteInvalid(f"cannot send {100 - percent:g} % to stable backends: there are none")
    if percent > 0 and candidate == 0:
        raise RouteInvalid(f"cannot send {percent:g} % to candidate backends: there are none")
    if percent == 0:
        return 1, 0
    if percent == 100:
        return 0, 1
    best = _nearest_weights(percent / 100, stable, candidate)
    missed = abs(_share(best, stable, candidate) - percent / 100) * 100
    if missed > SPLIT_TOLERANCE:
        lowest = _share((MAX_WEIGHT, 1), stable, candidate) * 100
        highest = _share((1, MAX_WEIGHT), stable, candidate) * 100
        raise RouteInvalid(
            f"{candidate} candidate against {stable} stable backends can take from {lowest:.2f} % to "
            f"{highest:.2f} % with weights up to {MAX_WEIGHT}, not {percent:g} %; ask for a share in "
            "that range or run fewer candidate backends")
    return best


def _nearest_weights(target: float, stable: int, candidate: int) -> tuple[int, int]:
    ratio = target * stable / ((1 - target) * candidate)  # candidate weight per stable weight
    best: tuple[int, int] | None = None
    best_error = math.inf
    for stable_weight in range(1, MAX_WEIGHT + 1):
        candidate_weight = min(MAX_WEIGHT, max(1, round(ratio * stable_weight)))
        pair = (stable_weight, candidate_weight)
        error = abs(_share(pair, stable, candidate) - target) * 100
        if error <= _CLOSE_ENOUGH:
            return pair
        if error < best_error:
            best, best_error = pair, error
    assert best is not None
    return best


def _share(weights: tuple[int, int], stable: int, candidate: int) -> float:
    stable_weight, candidate_weight = weights
    return candidate * candidate_weight / (stable * stable_weight + candidate * candidate_weight)


# --- what a driver reports ---------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What `apply` did: the engine, how (`reload` of nginx's configuration, or HAProxy's
    `runtime-api`), the seconds from the call until the proxy used the routes, and the routes."""

    engine: str
    how: Literal["reload", "runtime-api"]
    seconds: float
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Split:
    """Answers to `requests` requests sent through a route, counted by the release named in the
    version header. `failures` got no answer or a 5xx from the proxy (`reasons` has the first
    few); `unlabelled` were answered without the header."""

    requests: int
    versions: Mapping[str, int] = field(default_factory=dict)
    failures: int = 0
    unlabelled: int = 0
    reasons: tuple[str, ...] = ()

    @property
    def answered(self) -> int:
        """Answers that named a release."""
        return sum(self.versions.values())

    def share(self, version: str) -> float:
        """The fraction (0..1) of the answers that named a release which named `version`; 0.0
        when none did."""
        if self.answered == 0:
            return 0.0
        return self.versions.get(version, 0) / self.answered

    def describe(self) -> str:
        """One line a person reads: each release's count and share, then what failed."""
        parts = [f"{v} {n} ({self.share(v):.1%})" for v, n in sorted(self.versions.items())]
        text = f"{self.requests} requests: " + (", ".join(parts) or "no release answered")
        if self.unlabelled:
            text += f"; {self.unlabelled} without a version header"
        if self.failures:
            text += f"; {self.failures} failed ({'; '.join(self.reasons)})"
        return text


class TrafficDriver(Protocol):
    """A proxy that opsplane configures. Managed proxies run in the foreground under opsplane's
    process runtime (`run_argv`), their files under `directory`."""

    engine: str
    directory: Path

    def run_argv(self) -> list[str]:
        """The proxy in the foreground, as opsplane's process runtime starts it."""
        ...

    def prepare(self, routes: Sequence[Route]) -> None:
        """Write (and check) the configuration the proxy starts with."""
        ...

    def apply(self, routes: Sequence[Route]) -> Applied:
        """Make the running proxy use `routes`; returns once it does."""
        ...

    def current(self) -> list[Route]:
        """The routes the running proxy uses now."""
        ...

    def check(self, routes: Sequence[Route]) -> None:
        """Whether the proxy would take a configuration for `routes`, changing nothing; raises
        ProxyConfigInvalid with the proxy's own words when it would not."""
        ...

    def verify(self, route: Route, *, requests: int = 200, path: str = "/", timeout: float = 10) -> Split:
        """Send `requests` requests to the route's listen address and count the releases that
        answer."""
        ...


def find_binary(engine: str, configured: str | None) -> str:
    """The program to run: `configured` when set, else `engine` on PATH or in /usr/sbin."""
    if configured:
        named = shutil.which(configured)
        if named is None:
            raise ProxyError(f"the {engine} program {configured!r} (the proxy's `binary`) is not an "
                             "executable file or a program on PATH")
        return named
    found = shutil.which(engine) or shutil.which(engine, path="/usr/sbin:/sbin")
    if found is None:
        raise ProxyError(f"{engine} was not found on PATH or in /usr/sbin; install it "
                         "(scripts/bootstrap.sh does) or name the program in the proxy's `binary`")
    return found
