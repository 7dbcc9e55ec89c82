"""Test platforms for the runtime: an inventory in a temporary directory whose services are
real processes (service_app.py), its store, and ways to drive it through the driver or the CLI."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from typer.testing import CliRunner

from opsplane.config.loader import load
from opsplane.drivers.runtime.process import ProcessRuntime
from opsplane.drivers.runtime.processes import ProcessIdentity
from opsplane.drivers.runtime.protocol import StatePaths, read_state
from opsplane.errors import OpsplaneError
from opsplane.events.service import get_all
from opsplane.store import Store
from tests.support.polling import wait_for

APP = Path(__file__).with_name("service_app.py")
SECRET = "tok-7f3a9c-never-printed"


def service_yaml(name: str, *, port: int | None, extra_args: tuple[str, ...] = (), **run: Any) -> str:
    """One service of the inventory running service_app.py; `run` adds fields of its run section."""
    argv = [sys.executable, str(APP), "{port}", *extra_args]
    env = {"INSTANCE": "{instance}", "GREETING": "hello from {service}.{instance}", "RELEASE": "{version}"}
    fields = {"argv": argv, "env": env,
              "backoff": {"initial": "200ms"}, "stop_timeout": "3s", **run}
    lines = [f"  {name}:"]
    if port is not None:
        lines.append(f"    port: {port}")
    lines.append(f"    run: {json.dumps(fields)}")
    return "\n".join(lines)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Platform:
    root: Path
    env: dict[str, str]
    drivers: list[ProcessRuntime] = field(default_factory=list)

    @property
    def inventory_path(self) -> Path:
        return self.root / "opsplane.yaml"

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.root / ".opsplane" / "run")

    def write(self, *services: str, extra: str = "") -> None:
        body = "platform: {name: shop}\nservices:\n" + "\n".join(services) + "\n" + extra
        self.inventory_path.write_text(body)

    def driver(self) -> ProcessRuntime:
        driver = ProcessRuntime(load(self.inventory_path), base_dir=self.root, environ=self.env,
                                actor="cli:tester")
        self.drivers.append(driver)
        return driver

    def cli(self, *args: str) -> Result:
        """Run `opsplane -c <inventory> ARGS` in this process, exit codes as `opsplane` gives them."""
        from opsplane.cli import _register, app

        if not any(command.name == "up" for command in app.registered_commands):
            _register()
        result = CliRunner().invoke(app, ["-c", str(self.inventory_path), *args], env=self.env)
        if isinstance(result.exception, OpsplaneError):
            return Result(result.exception.exit_code, result.stdout, str(result.exception))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Events in the store, oldest first."""
        store = Store.open(self.env["OPSPLANE_DATABASE_URL"])
        try:
            with store.session() as session:
                rows = [event.as_dict() for event in get_all(session, kind=kind, limit=1000)]
        finally:
            store.close()
        return rows[::-1]

    def recorded(self) -> list[ProcessIdentity]:
        """Every process the state file names: the instances, then the supervisor."""
        state = read_state(self.paths) or {}
        found = [ProcessIdentity(item["pid"], item["create_time"])
                 for service in state.get("services", {}).values()
                 for item in service["instances"] if item.get("pid")]
        supervisor = state.get("supervisor") or {}
        if supervisor.get("pid"):
            found.append(ProcessIdentity(supervisor["pid"], supervisor["create_time"]))
        return found


def running(platform: Platform, service: str, count: int) -> list[Any]:
    """Wait until `service` has exactly `count` running instances; their statuses."""
    driver = platform.driver()

    def ready() -> list[Any]:
        found = [s for s in driver.status() if s.service == service]
        return found if len(found) == count and all(s.state == "running" for s in found) else []

    result: list[Any] = wait_for(ready, f"{count} running instance(s) of {service}")
    return result


def events(platform: Platform, kind: str, count: int) -> list[dict[str, Any]]:
    """The events of `kind`, once there are `count` of them (the supervisor writes from a thread)."""
    result: list[dict[str, Any]] = wait_for(
        lambda: (found := platform.events(kind)) and len(found) == count and found, f"{count} {kind} events")
    return result


def get_json(port: int, path: str = "/health", timeout: float = 2.0) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def answers(port: int) -> bool:
    try:
        get_json(port, timeout=0.5)
        return True
    except OSError:
        return False


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


