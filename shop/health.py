"""/health: every dependency checked concurrently with a short timeout, the verdict kept for
about a second so that frequent probes cost almost nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

OK, DEGRADED, DOWN = "ok", "degraded", "down"
CHECK_TIMEOUT = 1.0
CACHE_SECONDS = 1.0

# A probe returns normally when the dependency is fine, returns DEGRADED (with a reason) when
# it answers but is impaired, and raises when it cannot be used.
Probe = Callable[[], Awaitable[tuple[str, str] | None]]


@dataclass(frozen=True)
class Dependency:
    """Something a service needs. `hard`: without it the service is down, not just degraded."""

    name: str
    hard: bool
    probe: Probe


async def _check(dep: Dependency, timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        verdict = await asyncio.wait_for(dep.probe(), timeout)
    except TimeoutError:
        return {"status": DOWN, "reason": f"no answer within {timeout:g} s"}
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is a down dependency
        return {"status": DOWN, "reason": (str(exc) or type(exc).__name__).splitlines()[0][:200]}
    found: dict[str, Any] = {"status": OK, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}
    if verdict is not None:
        found["status"], found["reason"] = verdict
    return found


def overall(dependencies: list[Dependency], checks: dict[str, dict[str, Any]]) -> str:
    """down when a hard dependency is down; degraded when anything else is not ok."""
    status = OK
    for dep in dependencies:
        state = checks[dep.name]["status"]
        if state == DOWN and dep.hard:
            return DOWN
        if state != OK:
            status = DEGRADED
    return status


class HealthChecker:
    """Checks a service's dependencies; concurrent callers share one round of checks."""

    def __init__(
        self, service: str, version: str, dependencies: list[Dependency], error_ratio: Callable[[], float],
        *, timeout: float = CHECK_TIMEOUT, cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.service = service
        self.version = version
        self.dependencies = dependencies
        self._error_ratio = error_ratio
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._checked_at = -1e9
        self._checks: dict[str, dict[str, Any]] = {}
        self._round: asyncio.Task[dict[str, dict[str, Any]]] | None = None

    async def report(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status (200, or 503 when down) and the /health document."""
        checks = await self._current_checks()
        status = overall(self.dependencies, checks)
        body = {
            "status": status, "service": self.service, "version": self.version, "checks": checks,
            "errors": {"ratio_1m": round(self._error_ratio(), 4)},
        }
        return (503 if status == DOWN else 200), body

    async def _current_checks(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._checked_at < self._cache_seconds:
            return self._checks
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._run_round())
        return await asyncio.shield(self._round)

    async def _run_round(self) -> dict[str, dict[str, Any]]:
        results = await asyncio.gather(*(_check(dep, self._timeout) for dep in self.dependencies))
        self._checks = {dep.name: result for dep, result in zip(self.dependencies, results, strict=True)}
        self._checked_at = time.monotonic()
        return self._checks
