"""Who signs in and who sends the traffic, read from the services' log lines, and what of it
is a finding: pure functions over the lines, so the judgement is tested without a shop.

Per-client figures come from logs rather than metric labels, whose one series per client
address would be unbounded. Two kinds of line are read (the reference shop's gateway writes
both, `shop/gateway.py` and `shop/telemetry.py`):

    login result=failed user=alice client=10.0.0.7
    traffic window=60s total=1234 addresses=57
    traffic client=10.0.0.7 requests=1100 denied=3

A service that writes the same lines gets the same findings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsplane.reports.models import Finding

# What the runtime's log reading keeps (a regular expression for `logs(grep=...)`).
GREP = r"login result=|traffic (window|client)="
_LOGIN = re.compile(r"\blogin result=(?P<result>\w+) user=(?P<user>\S+) client=(?P<client>\S+)")
_WINDOW = re.compile(r"\btraffic window=\S+ total=(?P<total>\d+) addresses=(?P<addresses>\d+)")
_CLIENT = re.compile(r"\btraffic client=(?P<client>\S+) requests=(?P<requests>\d+) denied=(?P<denied>\d+)")
TOP = 10


@dataclass
class Client:
    """One client address: its requests and refusals in the windows it was among the busiest,
    and its sign-ins."""

    address: str
    requests: int = 0
    denied: int = 0
    failed_logins: int = 0
    ok_logins: int = 0
    users: set[str] = field(default_factory=set)  # the names it failed to sign in as

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.address, "requests": self.requests, "denied": self.denied,
                "failed_logins": self.failed_logins, "ok_logins": self.ok_logins,
                "users_tried": sorted(self.users)}


@dataclass
class Tally:
    """Everything the lines said: requests in all, sign-ins by result, each client."""

    requests: int = 0
    windows: int = 0
    logins: dict[str, int] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, address: str) -> Client:
        found = self.clients.get(address)
        if found is None:
            found = self.clients[address] = Client(address)
        return found

    def busiest(self, limit: int = TOP) -> list[Client]:
        return sorted((c for c in self.clients.values() if c.requests),
                      key=lambda c: (-c.requests, c.address))[:limit]

    def failed_login_sources(self, limit: int = TOP) -> list[Client]:
        return sorted((c for c in self.clients.values() if c.failed_logins),
                      key=lambda c: (-c.failed_logins, c.address))[:limit]


def tally(texts: Iterable[str]) -> Tally:
    """Add up the sign-in and traffic lines among `texts`; other lines are skipped."""
    found = Tally()
    for text in texts:
        if (login := _LOGIN.search(text)) is not None:
            result = login["result"]
            found.logins[result] = found.logins.get(result, 0) + 1
            client = found.client(login["client"])
            if result == "failed":
                client.failed_logins += 1
                if len(client.users) < 50:
                    client.users.add(login["user"])
            elif result == "ok":
                client.ok_logins += 1
        elif (window := _WINDOW.search(text)) is not None:
            found.requests += int(window["total"])
            found.windows += 1
        elif (busy := _CLIENT.search(text)) is not None:
            client = found.client(busy["client"])
            client.requests += int(busy["requests"])
            client.denied += int(busy["denied"])
    return found


@dataclass(frozen=True)
class Limits:
    """When a client is a finding (the alert pack's thresholds, docs/security.md)."""

    brute_force_logins: int = 50
    client_share: float = 0.5
    client_min_requests: int = 1000
    # networks whose share of the requests is no signal: the host itself (a local proxy, a
    # health checker, a load generator on the same machine), the site's own proxies
    share_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    def exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.share_exempt)


def judge(found: Tally, limits: Limits, *, window: str) -> list[Finding]:
    """The findings: a client with `brute_force_logins` failed sign-ins or more is critical
    (brute force), one with a fifth of that a warning; a client sending more than
    `client_share` of the requests (when there are `client_min_requests`; not one in
    `share_exempt`), or having most of
    its requests refused, a warning."""
    findings: list[Finding] = []
    attempts = max(1, limits.brute_force_logins // 5)
    for client in found.failed_login_sources(limit=len(found.clients)):
        users = ", ".join(sorted(client.users)[:5]) + (", ..." if len(client.users) > 5 else "")
        detail = client.as_dict()
        if client.failed_logins >= limits.brute_force_logins:
            findings.append(Finding("critical", client.address,
                                    f"{client.failed_logins} failed sign-ins in {window} (brute force?) "
                                    f"as {users}; block the address or the accounts", detail))
        elif client.failed_logins >= attempts:
            findings.append(Finding("warning", client.address,
                                    f"{client.failed_logins} failed sign-ins in {window} as {users}", detail))
    if found.requests >= limits.client_min_requests:
        for client in found.busiest():
            share = client.requests / found.requests
            if share > limits.client_share and not limits.exempt(client.address):
                findings.append(Finding("warning", client.address,
                                        f"sent {share:.0%} of the requests in {window} "
                                        f"({client.requests} of {found.requests})", client.as_dict()))
    for client in found.busiest(limit=len(found.clients)):
        if client.denied >= limits.brute_force_logins and client.denied > client.requests / 2:
            findings.append(Finding("warning", client.address,
                                    f"{client.denied} of its {client.requests} requests in {window} were "
                                    "refused or not found (401, 403, 404): a scan?", client.as_dict()))
    return findings
