"""The shop's releases: what `SHOP_VERSION` selects, and what each release does differently.

Deploys choose a release by setting `SHOP_VERSION`; a few of the releases are broken on purpose,
each in one way that a deploy strategy has to notice (errors, latency, a tail of latency, a crash,
a schema change, a failed schema change). `v1` and `v2` are the good ones and behave alike.

Which routes a release touches is a property of the service, named in its `ServiceSpec`:
its main route (catalog `GET /products`, the product listing; orders `POST /checkout`; payments
`POST /charges`; the gateway every `/api` route it passes on) and its checkout route (orders
`POST /checkout`, where the shop's checkout happens, and the gateway's `POST /api/checkout`,
where it enters the shop; catalog and payments have none).

`ReleaseBehaviour` makes the per-request decisions (fail this request? how much extra delay?)
from its own generator, seeded from `SHOP_SEED`, so that a seeded run fails and delays exactly
the same requests every time. These are a separate thing from faults (`shop.faults`): a release
is chosen at start and lasts the life of the process, a fault is put in force and cleared at
run time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_RELEASE = "v1"
CRASH_EXIT_CODE = 1


@dataclass(frozen=True)
class Release:
    """One release and how it departs from a good one."""

    name: str
    description: str
    checkout_error_ratio: float = 0.0  # share of checkout requests answered with a 500
    main_route_delay_s: float = 0.0  # added to every main-route request
    tail_ratio: float = 0.0  # share of main-route requests that are slow ...
    tail_delay_s: tuple[float, float] = (0.0, 0.0)  # ... by a uniform draw from this range
    crash_after_s: float | None = None  # seconds after it begins to answer
    migration: str | None = None  # the schema change it applies at start (`shop.db.MIGRATIONS`)


_KNOWN = (
    Release("v1", "a good release"),
    Release("v2", "a good release; behaves as v1"),
    Release("v2-bad", "5 % of checkouts (orders POST /checkout, gateway POST /api/checkout) "
            "fail with HTTP 500", checkout_error_ratio=0.05),
    Release("v2-slow", "300 ms more on each service's main route", main_route_delay_s=0.3),
    Release("v2-jitter", "median as v2, but 10 % of main-route requests take 400-800 ms more",
            tail_ratio=0.10, tail_delay_s=(0.4, 0.8)),
    Release("v2-crash", f"exits with code {CRASH_EXIT_CODE}, 3 s after it begins to answer",
            crash_after_s=3.0),
    Release("v2-migration", "adds the nullable column orders.gift_note at start (catalog, orders), "
            "then behaves as v2", migration="order_gift_note"),
    Release("v2-migration-fail", "its schema change fails at start (catalog, orders): one line says why, "
            "exit code 1", migration="order_coupon_index"),
)

RELEASES: dict[str, str] = {release.name: release.description for release in _KNOWN}
_BY_NAME = {release.name: release for release in _KNOWN}


class UnknownRelease(ValueError):
    """A release name that is not one of RELEASES."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a known release: choose one of {', '.join(RELEASES)} "
                         "(`python -m shop releases` describes them)")
        self.name = name


def get_by_name(name: str) -> Release:
    """The release called `name`; UnknownRelease listing the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownRelease(name) from None


def describe_releases(*, as_json: bool = False) -> str:
    """The known releases in order, one a line with what it does, or as a JSON list of
    `{"name", "description"}` (what `python -m shop releases [--json]` prints)."""
    if as_json:
        return json.dumps([{"name": name, "description": text} for name, text in RELEASES.items()], indent=2)
    width = max(map(len, RELEASES))
    return "\n".join(f"{name:<{width}}  {text}" for name, text in RELEASES.items())


class ReleaseBehaviour:
    """The decisions one service process makes under its release, request by request.

    A good release answers every question with "nothing": no failure, no delay, and it draws
    nothing from its generator."""

    def __init__(self, release: Release, *, main_routes: Iterable[str] = (),
                 checkout_route: str | None = None, seed: int | None = None) -> None:
        self.release = release
        self._rng = random.Random(None if seed is None else f"release:{seed}")
        delays = release.main_route_delay_s or release.tail_ratio
        self._delayed = frozenset(main_routes) if delays else frozenset()
        self._failing = checkout_route if release.checkout_error_ratio else None

    @property
    def name(self) -> str:
        return self.release.name

    def extra_delay(self, route: str) -> float:
        """Seconds to wait before answering a request of `route` (a route template)."""
        if route not in self._delayed:
            return 0.0
        release = self.release
        delay = release.main_route_delay_s
        if release.tail_ratio and self._rng.random() < release.tail_ratio:
            delay += self._rng.uniform(*release.tail_delay_s)
        return delay

    def fails(self, route: str) -> bool:
        """Whether this request of `route` is to be answered with a 500 by the release."""
        return route == self._failing and self._rng.random() < self.release.checkout_error_ratio

    def failure_cause(self, route: str) -> str:
        """What the failure log line says of a request `fails` failed."""
        return f"release {self.name}: {self.release.checkout_error_ratio:.0%} of {route} requests fail"
