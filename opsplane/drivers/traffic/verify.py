"""Proving a split on live answers: requests through a route, counted by the release that
answered. Both drivers' `verify` is this."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from opsplane.drivers.traffic.base import Route, RouteInvalid, Split, hostport

_REASONS_KEPT = 5

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "*": "127.0.0.1"}


def route_url(route: Route, path: str = "/") -> str:
    """The URL a client on this machine reaches the route at (a wildcard listen address is
    reached on loopback)."""
    if not path.startswith("/"):
        raise RouteInvalid(f"verify path {path!r} must start with /")
    host = _WILDCARDS.get(route.listen_host, route.listen_host)
    return f"http://{hostport(host, route.listen_port)}{path}"


def count_versions(route: Route, *, version_header: str, requests: int = 200, path: str = "/",
                   timeout: float = 10.0) -> Split:
    """Send `requests` GETs one after the other through `route`, over one keep-alive client as
    a browser would, and count the release each answer names in `version_header`. `timeout`
    bounds the whole run: requests not answered by then count as failures."""
    if requests < 1:
        raise RouteInvalid(f"verify needs at least one request, not {requests}")
    url = route_url(route, path)
    versions: Counter[str] = Counter()
    failures = unlabelled = 0
    reasons: list[str] = []

    def fail(reason: str) -> None:
        nonlocal failures
        failures += 1
        if reason not in reasons and len(reasons) < _REASONS_KEPT:
            reasons.append(reason)

    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(requests):
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"not sent within the {timeout:g} s of the check")
                continue
            try:
                response = client.get(url, timeout=left)
            except httpx.HTTPError as exc:
                fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                continue
            if response.status_code >= 500:
                fail(f"HTTP {response.status_code}")
                continue
            version = response.headers.get(version_header)
            if version:
                versions[version] += 1
            else:
                unlabelled += 1
    return Split(requests=requests, versions=dict(versions), failures=failures, unlabelled=unlabelled,
                 reasons=tuple(reasons))
