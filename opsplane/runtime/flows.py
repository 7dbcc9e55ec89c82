"""Waiting on a runtime: what `opsplane up` and `opsplane restart` show when they return."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opsplane.drivers.runtime.base import InstanceState, InstanceStatus, RuntimeDriver


def settled(statuses: Sequence[InstanceStatus], baseline: dict[str, int] | None = None) -> bool:
    """Whether there is nothing more to wait for: every instance runs, or one has exited since
    `baseline` (restarts per instance name when the wait began) or gave up."""
    baseline = baseline or {}
    for status in statuses:
        if status.state in (InstanceState.BACKOFF, InstanceState.FAILED, InstanceState.STOPPED):
            return True
        if status.restarts > baseline.get(status.name, status.restarts):
            return True
    return all(status.state == InstanceState.RUNNING for status in statuses)


def await_settled(
    driver: RuntimeDriver,
    services: Sequence[str],
    *,
    timeout: float,
    poll: float = 0.1,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[InstanceStatus]:
    """The instances of `services` once they settled (see `settled`) or `timeout` passed."""
    wanted = set(services)
    statuses = [s for s in driver.status() if s.service in wanted]
    baseline = {s.name: s.restarts for s in statuses}
    deadline = monotonic() + timeout
    while statuses and not settled(statuses, baseline) and monotonic() < deadline:
        sleep(poll)
        statuses = [s for s in driver.status() if s.service in wanted]
    return statuses
