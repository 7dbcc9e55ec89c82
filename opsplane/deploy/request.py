"""Asking for a deploy: everything checked before anything changes.

`prepare` turns a request (service, release, options) into a plan or refuses it with a reason a
person can act on: an unknown service or release, a release that is not built, a strategy the
service cannot use, a window that is closed (with when the next one opens). It reads the
inventory and the runtime and changes nothing, so `--dry-run` is `prepare` printed.
"""

from __future__ import annotations

import difflib
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsplane.config.models import Inventory
from opsplane.deploy import plan as plans
from opsplane.deploy.service import DeployRefused
from opsplane.deploy.windows import WindowDecision, decide


@dataclass(frozen=True)
class Request:
    service: str
    version: str
    environment: str
    strategy: str | None = None
    auto_promote: bool | None = None
    initial_percent: float | None = None
    override_reason: str | None = None


@dataclass
class Prepared:
    request: Request
    strategy: str
    from_version: str
    instances: int
    proxied: bool
    steps: list[dict[str, Any]]
    window: WindowDecision
    approvals_needed: int
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.request.service, "environment": self.request.environment,
            "strategy": self.strategy, "from": self.from_version, "to": self.request.version,
            "instances": self.instances, "proxied": self.proxied,
            "steps": [{**step, "text": plans.describe(step)} for step in self.steps],
            "window": {"allowed": self.window.allowed, "reason": self.window.reason,
                       "next_open": self.window.next_open.isoformat() if self.window.next_open else None},
            "override": self.request.override_reason, "approvals_needed": self.approvals_needed,
            "params": self.params,
        }


def prepare(inventory: Inventory, request: Request, *, current: dict[str, str],
            instances: dict[str, int], now: datetime, cwd: str | None = None) -> Prepared:
    """The plan for `request`; DeployRefused (exit code 3) when it cannot run. `current` is the
    release each service runs, `instances` how many instances each runs now."""
    settings = inventory.deploy
    names = [name for section, name, c in inventory.components() if section == "services"]
    if request.service not in names:
        close = difflib.get_close_matches(request.service, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; services: {', '.join(names)}"
        raise DeployRefused(f"unknown service {request.service!r}{hint}")
    component = inventory.component(request.service)
    if component.run is None:
        raise DeployRefused(f"{request.service} has no `run` section: opsplane does not run it, so it "
                            "cannot deploy it")
    own = settings.for_service(request.service)
    built = built_releases(own.releases, own.releases_command, cwd=cwd)
    if built is not None and request.version not in built:
        close = difflib.get_close_matches(request.version, built, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DeployRefused(f"release {request.version!r} of {request.service} is not built{hint}; "
                            f"built: {', '.join(built) or 'none'}")
    from_version = current.get(request.service) or component.run.version
    if from_version is None:
        raise DeployRefused(f"{request.service} has no release to deploy from: set run.version in the "
                            "inventory")
    if from_version == request.version:
        raise DeployRefused(f"{request.service} already runs {request.version}")
    strategy = request.strategy or own.strategy or settings.strategy
    proxied = component.proxy is not None
    if strategy in ("blue-green", "canary") and not proxied:
        raise DeployRefused(f"a {strategy} deploy moves requests through a proxy, and {request.service} "
                            "has none (`proxy:` in the inventory); use --strategy rolling")
    count = instances.get(request.service) or component.run.instances
    if request.initial_percent is not None and strategy != "canary":
        raise DeployRefused("--initial-percent is for canary deploys")
    policy = settings.windows.get(request.environment)
    window = (decide(policy, now) if policy is not None
              else WindowDecision(True, "no window applies", None, None))
    closed = not window.allowed and window.blocking != "approvals"  # approvals are waited for
    if closed and not request.override_reason:
        raise DeployRefused(f"{request.environment}: {window.reason}. Deploy then, or override with "
                            "--override --reason TEXT (operator role; recorded)")
    steps = plans.build(plans.PlanInput(
        strategy=strategy, instances=count, proxied=proxied, canary_steps=settings.canary.steps,
        initial_percent=request.initial_percent, keep_previous=settings.blue_green.keep_previous,
        smoke_tests=len(own.smoke)))
    auto = settings.canary.auto_promote if request.auto_promote is None else request.auto_promote
    params: dict[str, Any] = {"proxied": proxied, "auto_promote": auto}
    if request.override_reason:
        params["override"] = {"reason": request.override_reason, "window": window.reason}
    return Prepared(request, strategy, from_version, count, proxied, steps, window,
                    policy.approvals if policy is not None else 0, params)


def own_instances(runtime: Any) -> dict[str, int]:
    """How many instances of its own each service runs (extra `SERVICE@VERSION` groups left
    out); none when the runtime's supervisor is not running."""
    from opsplane.drivers.runtime.base import RuntimeNotRunning

    counts: dict[str, int] = {}
    try:
        for status in runtime.status():
            if "@" not in status.service:
                counts[status.service] = counts.get(status.service, 0) + 1
    except RuntimeNotRunning:
        pass
    return counts


def check_proxy(inventory: Inventory, service: str, runtime: Any, *, base_dir: Path) -> None:
    """Refuse a deploy whose proxy would not take its configuration (`nginx -t`, `haproxy -c`)
    with the routes that run now: nothing has changed yet, and the proxy's own words say why."""
    from opsplane.drivers.runtime.base import RuntimeNotRunning
    from opsplane.drivers.traffic.base import ProxyError
    from opsplane.drivers.traffic.routes import open_proxy, routes

    name = inventory.component(service).proxy
    if name is None:
        return
    try:
        statuses = runtime.status()
    except RuntimeNotRunning:
        statuses = []
    try:
        open_proxy(inventory, name, base_dir).check(routes(inventory, name, statuses, {}))
    except ProxyError as exc:
        raise DeployRefused(f"proxy {name} cannot take the deploy's configuration: {exc}") from None


def built_releases(listed: list[str] | None, command: list[str] | None, *,
                   cwd: str | None) -> list[str] | None:
    """The releases that may be deployed: the listed ones, else what `command` prints (the first
    word of each line); None when neither is configured (any release name is accepted)."""
    if listed is not None:
        return list(listed)
    if command is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeployRefused(f"cannot list the built releases with {command[0]}: {exc}") from None
    if done.returncode != 0:
        raise DeployRefused(f"listing the built releases failed (exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[-300:]}")
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
