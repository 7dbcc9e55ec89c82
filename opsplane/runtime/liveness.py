"""Which services the runtime runs, which it has given up on, and which to look at now.

`serve` feeds `ServiceLiveness` the runtime's notices (`RuntimeDriver.watch`). Two things
come out, both pure functions of the notices so far:

- the services to look at now: one whose process just exited, one that stopped or started
  answering, and every one when the runtime is followed afresh (first, or again after it was
  lost: what changed meanwhile is not known), so their checks (and scrapes) run at once
  instead of at their slots;
- the services that are down for good: every instance has exited and the runtime will not
  start any again (a failure under `restart: never`, or `max_restarts` reached). Those are
  the built-in `ServiceNotRunning` alert's series. A service waiting out a back-off is on
  its way back and is left to its checks, as is one that exited cleanly (a job that is done).

A service's tracks (`catalog@v2`, another release run beside it) count as the service: their
instances are the component's too, and its checks are what looks at them.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsplane.drivers.runtime.base import InstanceState, RuntimeNotice
from opsplane.drivers.runtime.releases import base_service

# An instance whose exit was announced but whose next state (back-off, failed, stopped) has
# not arrived yet: not running, not yet given up on.
EXITED = "exited"
_ON_ITS_WAY = frozenset({InstanceState.RUNNING, InstanceState.STARTING, InstanceState.BACKOFF, EXITED})


class ServiceLiveness:
    """The runtime's instances as its notices describe them: by component, each instance by its
    name (`catalog.0`, `catalog@v2.0`)."""

    def __init__(self) -> None:
        self._states: dict[str, dict[str, str]] = {}
        self._following = False

    def apply(self, notice: RuntimeNotice) -> set[str]:
        """Take in one notice; the services to look at now. A "lost" runtime changes nothing:
        what it ran is taken to be as it was last told until it answers again."""
        if notice.kind == "exited" and notice.service is not None:
            service = base_service(notice.service)
            if notice.instance is not None:
                self._states.setdefault(service, {})[f"{notice.service}.{notice.instance}"] = EXITED
            return {service}
        if notice.kind == "lost":
            self._following = False
        if notice.kind != "state":
            return set()
        states: dict[str, dict[str, str]] = {}
        for status in notice.instances:
            states.setdefault(status.base_service, {})[status.name] = str(status.state)
        before, afresh = self._states, not self._following
        self._states, self._following = states, True
        return {name for name in before.keys() | states.keys()
                if afresh or _condition(before.get(name, {})) != _condition(states.get(name, {}))}

    def serving(self, service: str) -> bool:
        """Whether an instance of `service` runs (true too for a service the runtime does not
        report: nothing says otherwise)."""
        return _condition(self._states.get(service, {}))[0]

    def down_for_good(self) -> dict[str, int]:
        """Services none of whose instances runs or will be started again, with how many of
        them failed."""
        found = {}
        for service, instances in self._states.items():
            failed = sum(1 for state in instances.values() if state == InstanceState.FAILED)
            if failed and not any(state in _ON_ITS_WAY for state in instances.values()):
                found[service] = failed
        return found


def _condition(instances: Mapping[str, str]) -> tuple[bool, bool]:
    """(serving, down for good) of one service's instances; an unknown service is serving."""
    if not instances:
        return True, False
    serving = any(state == InstanceState.RUNNING for state in instances.values())
    given_up = (not any(state in _ON_ITS_WAY for state in instances.values())
                and any(state == InstanceState.FAILED for state in instances.values()))
    return serving, given_up
