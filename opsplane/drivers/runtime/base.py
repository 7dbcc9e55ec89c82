"""The runtime boundary: what runs the inventory's components, behind one interface.

`open_runtime(inventory)` returns the driver the inventory's `runtime.driver` names. Callers
(the CLI, the dashboard, `serve`) only use `RuntimeDriver`, `InstanceStatus`, `LogLine` and
`RuntimeNotice`, so a `compose` or `kubernetes` driver can follow without changing them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from opsplane.drivers.runtime.releases import split_group
from opsplane.errors import OpsplaneError


class InstanceState(StrEnum):
    STARTING = "starting"  # started, its port not answering yet
    RUNNING = "running"
    BACKOFF = "backoff"  # exited, waiting to be restarted
    FAILED = "failed"  # exited and not restarted: non-zero exit, or too many restarts
    STOPPED = "stopped"  # exited cleanly, or stopped on request


@dataclass(frozen=True)
class InstanceStatus:
    """One instance of a service as the runtime sees it now.

    `service` is the group the instance belongs to: the component's name for its own
    instances, `SERVICE@VERSION` for a track's (`base_service` and `release` take it apart).
    `version` is the release the instance runs, which can differ from its group's during a
    rolling deploy."""

    service: str
    instance: int
    pid: int | None
    port: int | None
    state: str
    started_at: datetime | None
    restarts: int
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    last_exit: str | None = None
    version: str | None = None

    @property
    def base_service(self) -> str:
        """The component it is an instance of: "catalog" for "catalog" and "catalog@v2"."""
        return split_group(self.service)[0]

    @property
    def release(self) -> str | None:
        """The release of the track it belongs to ("v2" for "catalog@v2"); None for an instance of
        the service's own group."""
        return split_group(self.service)[1]

    @property
    def uptime(self) -> float | None:
        """Seconds since the current process started; None unless it is starting or running."""
        return self.uptime_at(datetime.now(UTC))

    def uptime_at(self, now: datetime) -> float | None:
        if self.started_at is None or self.state not in (InstanceState.STARTING, InstanceState.RUNNING):
            return None
        return max(0.0, (now - self.started_at).total_seconds())

    @property
    def name(self) -> str:
        """`service.instance` (`catalog.0`, `catalog@v2.0`), as logs and tables show it."""
        return f"{self.service}.{self.instance}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "instance": self.instance,
            "pid": self.pid,
            "port": self.port,
            "state": str(self.state),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "uptime": self.uptime,
            "restarts": self.restarts,
            "rss_bytes": self.rss_bytes,
            "cpu_percent": self.cpu_percent,
            "last_exit": self.last_exit,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceStatus:
        started = data.get("started_at")
        return cls(
            service=data["service"],
            instance=int(data["instance"]),
            pid=data.get("pid"),
            port=data.get("port"),
            state=str(data["state"]),
            started_at=datetime.fromisoformat(started) if started else None,
            restarts=int(data.get("restarts", 0)),
            rss_bytes=data.get("rss_bytes"),
            cpu_percent=data.get("cpu_percent"),
            last_exit=data.get("last_exit"),
            version=data.get("version"),
        )


@dataclass(frozen=True)
class LogLine:
    """One line an instance wrote, stamped (UTC) when the runtime read it."""

    ts: datetime
    service: str
    instance: int
    stream: str  # stdout or stderr
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts.isoformat(), "service": self.service, "instance": self.instance,
                "stream": self.stream, "text": self.text}


@dataclass(frozen=True)
class RuntimeNotice:
    """What a runtime tells those who watch it (`RuntimeDriver.watch`).

    `kind` is "state" (every instance as it is now, after each change and first thing on
    connecting), "exited" (one instance's process ended without being asked to: `service`,
    `instance`, `pid`, `exit`; sent the moment the runtime sees it, before the state that
    follows) or "lost" (the runtime stopped answering; notices resume with a "state" when it
    is back)."""

    kind: str
    instances: tuple[InstanceStatus, ...] = ()
    service: str | None = None
    instance: int | None = None
    pid: int | None = None
    exit: str | None = None


class RuntimeWatch(Protocol):
    """What `serve` needs of a runtime: its notices."""

    def watch(self) -> AsyncIterator[RuntimeNotice]:
        """Notices until the caller stops iterating. Never ends on its own and never raises for
        a runtime that is not running or restarts: it waits for it and carries on."""
        ...


class RuntimeDriver(RuntimeWatch, Protocol):
    """Starts, stops, scales and reports the components that have a `run` section.

    Service names are component names; `None` means every runnable component. Each change is
    recorded as a `runtime.*` event by the driver.

    Releases: each service runs its current release, the one recorded by `set_release`, else
    its `run.version`; `up` starts that one. A track runs another release of a service beside
    it as a group of its own, `SERVICE@VERSION`, on free ports; `replace_instance` moves one
    instance to another release in place, for rolling deploys.
    """

    def up(self, services: Sequence[str] | None = None) -> None:
        """Start the services with their current releases (those already running with the same
        settings are left alone; one running another release is started again with this one)."""
        ...

    def down(self, services: Sequence[str] | None = None) -> None:
        """Stop the services and their tracks; with None, stop everything and leave no process
        behind. The recorded releases are kept."""
        ...

    def restart(self, service: str) -> None:
        """Stop and start each instance of `service` (or of a track, `SERVICE@VERSION`), one after
        the other; each keeps its release."""
        ...

    def scale(self, service: str, instances: int) -> None:
        """Run exactly `instances` instances of `service`; new ones start with the release the
        whole group runs."""
        ...

    def status(self) -> list[InstanceStatus]:
        """Every instance the runtime knows of, tracks included, by group and instance number."""
        ...

    def releases(self) -> dict[str, str]:
        """The current release of each runnable service that has one: the recorded one, else its
        `run.version`."""
        ...

    def set_release(self, service: str, version: str) -> None:
        """Record `version` as the current release of `service`: what `up` starts from now on.
        Running instances are not touched."""
        ...

    def start_track(self, service: str, version: str, instances: int, *,
                    deadline: float = 60.0) -> list[InstanceStatus]:
        """Run `instances` instances of `version` of `service` beside its own, as the track
        `SERVICE@VERSION` on free ports, and wait until each answers on its port; their statuses.
        Raises RuntimeFailure naming the instance and its last exit when one gives up or is not
        running within `deadline` seconds (the track is then stopped); a track already running is
        brought to `instances`."""
        ...

    def scale_track(self, service: str, version: str, instances: int, *,
                    deadline: float = 60.0) -> list[InstanceStatus]:
        """Run exactly `instances` instances of the running track `SERVICE@VERSION` and wait for
        them as `start_track` does (a failure leaves the track as it is)."""
        ...

    def stop_track(self, service: str, version: str) -> None:
        """Stop the track `SERVICE@VERSION` (nothing to do when it does not run)."""
        ...

    def replace_instance(self, service: str, index: int, version: str, *,
                         deadline: float = 60.0) -> InstanceStatus:
        """Stop instance `index` of `service` (SIGTERM, then SIGKILL after stop_timeout) and start
        it with `version` on the same port; its status once it answers. Raises RuntimeFailure
        naming the instance and its last exit when it is not running within `deadline` seconds.
        The group starts new instances with `version` once every instance runs it."""
        ...

    def logs(
        self,
        service: str,
        since: datetime | None = None,
        grep: str | None = None,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[LogLine]:
        """The log lines of the service's own instances, or of a track's (`SERVICE@VERSION`),
        oldest first; with `follow`, then new lines as they come."""
        ...


class RuntimeNotRunning(OpsplaneError):
    """Nothing supervises the services: `ps`, `restart` and `stats` have nothing to ask.

    `orphans` are processes a supervisor that died left behind (still alive, no longer
    restarted); with any, the exit code is 2, else 1."""

    exit_code = 1

    def __init__(self, message: str, orphans: Sequence[InstanceStatus] = ()) -> None:
        super().__init__(message)
        self.orphans = list(orphans)
        if self.orphans:
            self.exit_code = 2


class RuntimeFailure(OpsplaneError):
    """The runtime could not do what was asked (a supervisor that does not answer, a stop that
    did not end a process, an instance of a new release that did not come up)."""
