"""When `opsplane up` stops waiting: every instance runs, or one has exited; an instance without
a port, which is running from its start, only once it has run for a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.runtime.flows import PORTLESS_GRACE, settled

T0 = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def status(state: str, *, port: int | None, restarts: int = 0) -> InstanceStatus:
    return InstanceStatus(service="worker", instance=0, pid=4242, port=port, state=state, started_at=T0,
                          restarts=restarts)


def test_an_instance_without_a_port_is_believed_running_only_after_the_grace() -> None:
    portless = [status("running", port=None)]

    assert not settled(portless, now=T0 + timedelta(seconds=PORTLESS_GRACE / 2))
    assert settled(portless, now=T0 + timedelta(seconds=PORTLESS_GRACE))
    assert settled([status("running", port=8000)], now=T0), "a port that answers is proof enough"


def test_an_exit_ends_the_wait_at_once() -> None:
    now = T0 + timedelta(seconds=0.1)

    assert settled([status("failed", port=None)], now=now)
    assert settled([status("running", port=None, restarts=1)], {"worker.0": 0}, now=now)
    assert not settled([status("starting", port=8000)], now=now)
