"""Fault injection: what an operator (or a test) asks a service to do wrong, and the
runtime that does it.

`FaultPlan` is the JSON document of `PUT /admin/faults` and `SHOP_FAULTS`. `FaultInjector`
holds the plan in force and answers the questions the request path asks (should this
request fail, wait, hang; is this dependency out), grows memory and crashes the process.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("shop.faults")

ALL_ROUTES = "*"
# Operational routes keep answering under "*" faults so the fault can be observed and cleared.
EXEMPT_ROUTES = frozenset({"/admin/faults", "/health", "/metrics", "/version"})

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[float, Field(ge=0.0, le=600_000.0)]


class CrashFault(BaseModel):
    """Exit the process with `exit_code` once `after_requests` more requests were answered."""

    model_config = ConfigDict(extra="forbid")

    after_requests: int = Field(0, ge=0)
    exit_code: int = Field(1, ge=1, le=255)


class MemoryGrowthFault(BaseModel):
    """Allocate (and touch) `mb_per_second` MB each second, up to `limit_mb` when given."""

    model_config = ConfigDict(extra="forbid")

    mb_per_second: float = Field(gt=0.0, le=1024.0)
    limit_mb: float | None = Field(None, gt=0.0)


class FaultPlan(BaseModel):
    """The faults in force. Route keys are route templates (`/products/{product_id}`) or `*`."""

    model_config = ConfigDict(extra="forbid")

    error_ratio: dict[str, Ratio] = Field(default_factory=dict)
    error_status: int = Field(500, ge=500, le=599)
    latency_ms: dict[str, Millis] = Field(default_factory=dict)
    hang: list[str] = Field(default_factory=list)
    crash: CrashFault | None = None
    memory_growth: MemoryGrowthFault | None = None
    outages: list[str] = Field(default_factory=list)

    def problems(self, routes: Iterable[str], dependencies: Iterable[str]) -> list[str]:
        """What in this plan names a route or dependency the service does not have."""
        known_routes = set(routes) | {ALL_ROUTES}
        known_deps = set(dependencies)
        named = [*self.error_ratio, *self.latency_ms, *self.hang]
        found = [f"unknown route {r!r}: use one of {sorted(known_routes)}" for r in named
                 if r not in known_routes]
        found += [f"unknown dependency {d!r}: this service has {sorted(known_deps) or 'none'}"
                  for d in self.outages if d not in known_deps]
        return found


@dataclass(frozen=True)
class RouteFaults:
    """The faults that apply to one route, resolved once per plan change."""

    error_ratio: float = 0.0
    latency_s: float = 0.0
    hang: bool = False


def _pick(table: dict[str, float], route: str) -> float:
    if route in table:
        return table[route]
    return 0.0 if route in EXEMPT_ROUTES else table.get(ALL_ROUTES, 0.0)


def resolve(plan: FaultPlan, route: str) -> RouteFaults | None:
    """The faults `plan` puts on `route`, None when there are none (the common case)."""
    hang = route in plan.hang or (ALL_ROUTES in plan.hang and route not in EXEMPT_ROUTES)
    found = RouteFaults(_pick(plan.error_ratio, route), _pick(plan.latency_ms, route) / 1000.0, hang)
    return None if found == RouteFaults() else found


class FaultInjector:
    """The plan in force for one process, and the effects that outlive a single request."""

    def __init__(self, *, seed: int | None = None, exit_process: Callable[[int], None] = os._exit) -> None:
        self._rng = random.Random(None if seed is None else f"faults:{seed}")
        self._exit = exit_process
        self._plan = FaultPlan()
        self._by_route: dict[str, RouteFaults | None] = {}
        self._changed = asyncio.Event()
        self._answered_since_crash_set = 0
        self._ballast: list[mmap.mmap] = []
        self._grower: asyncio.Task[None] | None = None

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @property
    def ballast_mb(self) -> float:
        """Memory held by the memory-growth fault, in MB."""
        return sum(len(chunk) for chunk in self._ballast) / 1e6

    def apply(self, plan: FaultPlan) -> None:
        """Put `plan` in force, replacing the previous one; wakes requests waiting on a hang."""
        self._plan = plan
        self._by_route = {}
        self._answered_since_crash_set = 0
        self._changed.set()
        self._changed = asyncio.Event()
        self._restart_memory_growth()
        if plan.crash is not None and plan.crash.after_requests == 0:
            self._schedule_exit(plan.crash.exit_code)
        if plan != FaultPlan():
            log.warning("faults in force: %s", plan.model_dump_json(exclude_defaults=True))

    def clear(self) -> None:
        self.apply(FaultPlan())

    def for_route(self, route: str) -> RouteFaults | None:
        try:
            return self._by_route[route]
        except KeyError:
            found = self._by_route[route] = resolve(self._plan, route)
            return found

    def roll(self, ratio: float) -> bool:
        """True with probability `ratio` (the process's seeded generator)."""
        return self._rng.random() < ratio

    def is_out(self, dependency: str) -> bool:
        """Whether `dependency` is to be treated as unreachable."""
        return dependency in self._plan.outages

    async def wait_while_hung(self, route: str) -> None:
        """Return only once no plan hangs `route` any more."""
        while (faults := self.for_route(route)) is not None and faults.hang:
            await self._changed.wait()

    def answered(self) -> None:
        """Count one answered request toward a pending crash."""
        crash = self._plan.crash
        if crash is None or crash.after_requests == 0:
            return
        self._answered_since_crash_set += 1
        if self._answered_since_crash_set == crash.after_requests:
            self._schedule_exit(crash.exit_code)

    async def close(self) -> None:
        if self._grower is not None:
            self._grower.cancel()
        self._release_ballast()

    def _release_ballast(self) -> None:
        for chunk in self._ballast:
            chunk.close()
        self._ballast.clear()

    def _schedule_exit(self, code: int) -> None:
        log.error("injected crash: exiting with code %d", code)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._exit(code)
            return
        # Let the answer that triggered the crash leave the socket first.
        loop.call_later(0.05, self._exit, code)

    def _restart_memory_growth(self) -> None:
        if self._grower is not None:
            self._grower.cancel()
            self._grower = None
        growth = self._plan.memory_growth
        if growth is None:
            self._release_ballast()
            return
        try:
            self._grower = asyncio.get_running_loop().create_task(self._grow(growth))
        except RuntimeError:
            pass  # no loop yet: start() picks the plan up

    async def _grow(self, growth: MemoryGrowthFault) -> None:
        tick = 0.1
        chunk = max(1, int(growth.mb_per_second * 1e6 * tick))
        while growth.limit_mb is None or self.ballast_mb + chunk / 1e6 <= growth.limit_mb:
            self._ballast.append(_resident_block(chunk))
            await asyncio.sleep(tick)


def _resident_block(size: int) -> mmap.mmap:
    """`size` bytes of anonymous memory, every page written so that it counts in the RSS.

    An mmap of its own (not a bytes object) so that clearing the fault gives the memory back to
    the system at once instead of leaving it in the allocator's heap."""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 0xA5
    return block
