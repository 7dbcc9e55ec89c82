"""A service's group of instances in the supervisor, and waiting for instances to come up.

A group is a service's own instances (`catalog`) or a track's (`catalog@v2`): the instances, the
ports they were given, the count `scale` set, and the spec new instances start from.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

from opsplane.clock import Clock
from opsplane.drivers.runtime.base import InstanceState
from opsplane.drivers.runtime.instance import Instance
from opsplane.drivers.runtime.spec import ServiceSpec
from opsplane.drivers.sandbox.ports import free_port

_READY_POLL = 0.05
# states an instance does not leave by itself: it will not come up without being asked
_SETTLED = frozenset({InstanceState.FAILED, InstanceState.STOPPED})


class ServiceGroup:
    """The instances of one service, the ports they were given, and the count `scale` set (kept
    by `up`, even when the settings change, until the service is brought down)."""

    def __init__(self, spec: ServiceSpec, *, scaled_to: int | None = None,
                 ports: dict[int, int | None] | None = None) -> None:
        self.spec = spec
        self.scaled_to = scaled_to
        self.instances: dict[int, Instance] = {}
        self.ports: dict[int, int | None] = dict(ports or {})

    @property
    def wanted(self) -> int:
        """How many instances it should run: the count `scale` set, else the inventory's."""
        return self.scaled_to or self.spec.instances

    def port_for(self, index: int) -> int | None:
        """Instance 0 gets the component's port; others a free one, kept across restarts."""
        if index not in self.ports:
            if not self.spec.wants_port:
                self.ports[index] = None
            elif index == 0 and self.spec.port is not None:
                self.ports[index] = self.spec.port
            else:
                self.ports[index] = free_port(_bind_host(self.spec.host))
        return self.ports[index]

    def active_count(self) -> int:
        return sum(1 for instance in self.instances.values() if instance.active)

    def settle_version(self) -> None:
        """Once every instance runs one release, new instances start with it too (while a rolling
        deploy is under way they start with the release the group had)."""
        versions = {instance.version for instance in self.instances.values()}
        if len(versions) == 1:
            [version] = versions
            if version != self.spec.version:
                self.spec = replace(self.spec, version=version)


def _bind_host(host: str) -> str:
    try:
        socket.inet_aton(host)
        return host
    except OSError:
        return "127.0.0.1"


async def await_running(instances: list[Instance], timeout: float, clock: Clock) -> list[Instance]:
    """Wait until every one of `instances` runs; those that do not: at once when one has
    settled (failed, or exited for good), else once `timeout` seconds have passed (one that
    keeps crashing is reported, not waited for)."""
    deadline = clock.monotonic() + timeout
    while True:
        if all(instance.state == InstanceState.RUNNING for instance in instances):
            return []
        settled = [instance for instance in instances if instance.state in _SETTLED]
        if settled:
            return settled
        if clock.monotonic() >= deadline:
            return [instance for instance in instances if instance.state != InstanceState.RUNNING]
        await asyncio.sleep(_READY_POLL)


def not_running(instances: list[Instance], timeout: float, *, stopped: bool) -> str:
    """What a person reads when instances of a release did not come up: each one, its state and
    how it last ended, and where its output is."""
    described = []
    for instance in instances:
        state = (str(instance.state) if instance.state in _SETTLED
                 else f"not running after {timeout:g}s ({instance.state})")
        exit_note = f", last exit: {instance.last_exit}" if instance.last_exit else ""
        restarts = f", {instance.restarts} restarts" if instance.restarts else ""
        described.append(f"{instance.spec.name}.{instance.index} ({instance.version or 'no version'}) is "
                         f"{state}{exit_note}{restarts}")
    group = instances[0].spec.name
    then = f"; {group} was stopped" if stopped else ""
    return "; ".join(described) + f"{then}; see `opsplane logs {group}`"
