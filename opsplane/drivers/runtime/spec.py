"""What the supervisor needs to run one service, as plain JSON-ready data.

The CLI builds a `ServiceSpec` from the inventory and sends it to the supervisor, which never
reads the inventory itself: an `up` after the file changed brings the new settings with it.
Secret values are not in a spec, only their references, resolved when an instance starts.
A spec names the release its instances start with (`version`, the `{version}` placeholder);
a track is the same spec under the track's name, with its release and no fixed port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from opsplane.config.models import Component
from opsplane.drivers.runtime.releases import base_service, track_name
from opsplane.runtime.restarts import RestartPolicy

_PLACEHOLDER = re.compile(r"\{(port|host|instance|service|version)\}")
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    cwd: str
    host: str
    port: int | None  # instance 0's port: the component's own (None behind a proxy, and for a track)
    wants_port: bool  # every instance gets a port (the component has one, or argv/env use {port})
    instances: int
    policy: RestartPolicy
    stop_timeout: float
    log_max_bytes: int
    log_backups: int
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)  # name -> secret reference
    version: str | None = None  # the release new instances start with
    log_daily: bool = False  # rotate the log at its first line of each new day (UTC) too

    @classmethod
    def from_component(cls, name: str, component: Component, *, base_dir: Path,
                       version: str | None = None) -> ServiceSpec:
        """The spec of component `name` running `version` (default: its `run.version`). A
        component behind a proxy leaves its port to the proxy: every instance gets a free one."""
        run = component.run
        if run is None:
            raise ValueError(f"{name} has no run section")
        cwd = base_dir / run.cwd if run.cwd else base_dir
        return cls(
            name=name,
            argv=tuple(run.argv),
            cwd=str(cwd),
            host=component.host or DEFAULT_HOST,
            port=None if component.proxy else component.port,
            wants_port=component.port is not None or run.uses_port(),
            instances=run.instances,
            policy=RestartPolicy(
                mode=run.restart,
                initial=run.backoff.initial,
                factor=run.backoff.factor,
                max_delay=run.backoff.max,
                reset_after=run.backoff.reset_after,
                max_restarts=run.max_restarts,
                window=run.restart_window,
            ),
            stop_timeout=run.stop_timeout,
            log_max_bytes=run.logs.max_bytes,
            log_backups=run.logs.backups,
            log_daily=run.logs.daily,
            env=dict(run.env),
            secret_env={key: str(ref) for key, ref in run.secret_env.items()},
            version=version if version is not None else run.version,
        )

    def track(self, version: str, instances: int) -> ServiceSpec:
        """This service's spec for a track running `version` beside it: named `SERVICE@VERSION`,
        every instance on a free port."""
        return replace(self, name=track_name(self.name, version), port=None, version=version,
                       instances=instances)

    @property
    def service(self) -> str:
        """The component it runs ("catalog" for the track "catalog@v2" too)."""
        return base_service(self.name)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["env"] = dict(self.env)
        data["secret_env"] = dict(self.secret_env)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceSpec:
        """The spec of `as_dict`; a field this release does not know (sent by a newer CLI to a
        supervisor still running) is left out rather than refusing the request."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["argv"] = tuple(values["argv"])
        values["policy"] = RestartPolicy(**values["policy"])
        return cls(**values)

    def same_program(self, other: ServiceSpec) -> bool:
        """Whether `other` runs the same thing the same way (the instance count aside)."""
        mine, theirs = self.as_dict(), other.as_dict()
        mine.pop("instances")
        theirs.pop("instances")
        return mine == theirs


def substitute(text: str, *, port: int | None, host: str, instance: int, service: str,
               version: str | None = None) -> str:
    """`text` with {port}, {host}, {instance}, {service} and {version} replaced (an unknown
    version by ""); other braces are kept."""
    values = {"port": "" if port is None else str(port), "host": host,
              "instance": str(instance), "service": service, "version": version or ""}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
