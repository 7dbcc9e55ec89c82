"""What serve makes of the runtime's notices: which services to check now, and which the
runtime has given up on (the ServiceNotRunning series)."""

from __future__ import annotations

from opsplane.drivers.runtime import InstanceStatus, RuntimeNotice
from opsplane.runtime.liveness import ServiceLiveness


def state(**services: str | list[str]) -> RuntimeNotice:
    """A state notice: each service's instances in the given states (instance 0, 1, ...)."""
    instances = []
    for name, states in services.items():
        for index, value in enumerate([states] if isinstance(states, str) else states):
            instances.append(InstanceStatus(name, index, 100 + index, 8000 + index, value, None, 0))
    return RuntimeNotice("state", instances=tuple(instances))


def exited(service: str, instance: int = 0) -> RuntimeNotice:
    return RuntimeNotice("exited", service=service, instance=instance, pid=100 + instance, exit="signal 9")


def test_following_afresh_looks_at_every_service_then_only_at_what_changed() -> None:
    liveness = ServiceLiveness()
    assert liveness.apply(state(payments="running", orders="running")) == {"payments", "orders"}
    assert liveness.apply(state(payments="running", orders="running")) == set()
    assert liveness.apply(exited("payments")) == {"payments"}
    assert not liveness.serving("payments")
    # after a lost runtime nothing is known of what happened meanwhile: everything again
    assert liveness.apply(RuntimeNotice("lost")) == set()
    assert liveness.apply(state(payments="running", orders="running")) == {"payments", "orders"}


def test_a_service_that_stops_or_starts_answering_is_looked_at() -> None:
    liveness = ServiceLiveness()
    liveness.apply(state(payments="running"))
    assert liveness.apply(state(payments="backoff")) == {"payments"}
    assert liveness.apply(state(payments="starting")) == set()  # still not answering
    assert liveness.apply(state(payments="running")) == {"payments"}
    assert liveness.apply(state()) == set()  # stopped by `down`: gone, nothing says it is down


def test_only_a_service_the_runtime_will_not_start_again_is_down_for_good() -> None:
    liveness = ServiceLiveness()
    liveness.apply(state(payments="running", orders="running", migrate="running"))
    liveness.apply(exited("payments"))
    assert liveness.down_for_good() == {}  # exited: whether it comes back is not said yet
    liveness.apply(state(payments="failed", orders="backoff", migrate="stopped"))
    # orders waits out a back-off and migrate exited cleanly (a job that is done)
    assert liveness.down_for_good() == {"payments": 1}
    liveness.apply(state(payments="starting", orders="backoff", migrate="stopped"))  # `opsplane up`
    assert liveness.down_for_good() == {}


def test_a_service_with_an_instance_still_running_is_not_down_for_good() -> None:
    liveness = ServiceLiveness()
    liveness.apply(state(payments=["failed", "running"]))
    assert liveness.down_for_good() == {}
    assert liveness.apply(state(payments=["failed", "failed"])) == {"payments"}
    assert liveness.down_for_good() == {"payments": 2}


def test_a_lost_runtime_leaves_what_was_last_known() -> None:
    liveness = ServiceLiveness()
    liveness.apply(state(payments="failed"))
    liveness.apply(RuntimeNotice("lost"))
    assert liveness.down_for_good() == {"payments": 1}
    liveness.apply(state())  # the next supervisor runs nothing
    assert liveness.down_for_good() == {}
