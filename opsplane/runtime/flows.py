"""Waiting on a runtime: what `opsplane up` and `opsplane restart` show when they return."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.runtime.base import InstanceState, InstanceStatus, RuntimeDriver

# An instance without a port is `running` from its start, so a program that cannot run at all
# (a wrong argument, a module missing) looks like one that runs until it exits, usually within
# this many seconds: `up` believes such an instance runs once it has run this long.
PORTLESS_GRACE = 1.0


def settled(statuses: Sequence[InstanceStatus], baseline: dict[str, int] | None = None,
            now: datetime | None = None) -> bool:
    """Whether there is nothing more to wait for: every instance runs (one without a port for
    PORTLESS_GRACE seconds at `now`, when given), or one has exited since `baseline` (restarts
    per instance name when the wait began) or gave up."""
    baseline = baseline or {}
    for status in statuses:
        if status.state in (InstanceState.BACKOFF, InstanceState.FAILED, InstanceState.STOPPED):
            return True
        if status.restarts > baseline.get(status.name, status.restarts):
            return True
    if now is not None and any(_just_started(status, now) for status in statuses):
        return False
    return all(status.state == InstanceState.RUNNING for status in statuses)


def _just_started(status: InstanceStatus, now: datetime) -> bool:
    uptime = status.uptime_at(now)
    return status.port is None and uptime is not None and uptime < PORTLESS_GRACE


def await_settled(
    driver: RuntimeDriver,
    services: Sequence[str],
    *,
    timeout: float,
    poll: float = 0.1,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[InstanceStatus]:
    """The instances of `services` once they settled (see `settled`) or `timeout` passed."""
    clock = clock or SystemClock()
    wanted = set(services)
    statuses = [s for s in driver.status() if s.service in wanted]
    baseline = {s.name: s.restarts for s in statuses}
    deadline = clock.monotonic() + timeout
    while statuses and not settled(statuses, baseline, clock.now()) and clock.monotonic() < deadline:
        sleep(poll)
        statuses = [s for s in driver.status() if s.service in wanted]
    return statuses
