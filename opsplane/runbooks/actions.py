"""A runbook's `action` steps: each one a small adapter over the operation opsplane already
has (the runtime's restart and scale, a deploy's rollback, a database failover, a silence, a
Redis flush and warm-up). Each returns its outcome and a few lines saying what it did; a refusal of the
operation is a failed step, never an exception out of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError
from opsplane.store import Store


@dataclass(frozen=True)
class ActionContext:
    """What an action acts with: the inventory and its directory, the store, who acts, when."""

    inventory: Inventory
    base_dir: Path
    store: Store
    actor: str
    clock: Clock
    environ: Mapping[str, str]
    run_label: str  # "runbook check-failing, run 12": for comments and reasons


Outcome = tuple[str, str]  # (ok | failed, what it did)


def run_action(step: Any, context: ActionContext) -> Outcome:
    """Carry out `step` (an ActionStep with its parameters filled in)."""
    adapter = ADAPTERS.get(step.action)
    if adapter is None:
        return "failed", f"opsplane cannot run the action {step.action!r} from a runbook yet"
    try:
        return adapter(step, context)
    except OpsplaneError as exc:
        return "failed", f"{step.action} refused: {exc}"


def describe(step: Any) -> str:
    """What the action would do, for a dry run and for the question before it runs."""
    if step.action == "scale":
        return f"scale {step.target} to {step.instances} instance{'s' if step.instances != 1 else ''}"
    if step.action == "silence":
        from opsplane.timefmt import span

        return f"silence alerts matching {' '.join(step.matchers)} for {span(step.duration)}"
    if step.action == "flush-cache":
        return f"flush cache {step.target} (Redis FLUSHDB: every key of its database is deleted)"
    if step.action == "warm-cache":
        return f"warm cache {step.target}: the services that use it load their hot keys"
    if step.action == "rollback":
        return f"roll {step.target} back to its previous release"
    if step.action == "failover":
        return f"fail database {step.target} over to its standby"
    return f"{step.action} {step.target}"


def _runtime(context: ActionContext) -> Any:
    from opsplane.drivers.runtime.factory import open_runtime

    if not context.inventory.runs_services:
        raise OpsplaneError("no component has a run section: opsplane's runtime runs nothing here")
    return open_runtime(context.inventory, base_dir=context.base_dir, environ=context.environ,
                        actor=context.actor)


def _restart(step: Any, context: ActionContext) -> Outcome:
    driver = _runtime(context)
    before = {s.instance: s.pid for s in driver.status() if s.service == step.target}
    driver.restart(step.target)
    after = [s for s in driver.status() if s.service == step.target]
    lines = [f"restarted {s.name}: pid {before.get(s.instance) or '-'} -> {s.pid or '-'} ({s.state})"
             for s in after]
    running = bool(after) and all(s.state == "running" for s in after)
    return ("ok" if running else "failed"), "\n".join(lines) or f"{step.target} has no instances"


def _scale(step: Any, context: ActionContext) -> Outcome:
    driver = _runtime(context)
    driver.scale(step.target, step.instances)
    after = [s for s in driver.status() if s.service == step.target]
    running = sum(1 for s in after if s.state == "running")
    said = f"{step.target}: {running} of {step.instances} instances running"
    return ("ok" if running == step.instances else "failed"), said


def _rollback(step: Any, context: ActionContext) -> Outcome:
    from opsplane.deploy import service as deploys

    component = context.inventory.component(step.target)
    with context.store.session() as session:
        deploy_id, message = deploys.roll_back_service(
            session, step.target, actor=context.actor, now=context.clock.now(),
            proxied=component.proxy is not None, reason=f"asked for by {context.run_label}")
    return "ok", f"{message} (deploy {deploy_id}); serve's deploy worker carries it out"


def _failover(step: Any, context: ActionContext) -> Outcome:
    from opsplane.backup.failover import FailoverRefused, failover

    try:
        report = failover(context.store, context.inventory, step.target, clock=context.clock,
                          actor=context.actor, environ=context.environ)
    except FailoverRefused as refused:
        return "failed", f"failover of {step.target} refused, nothing changed: {refused}"
    lines = [f"{s.name}: {'ok' if s.ok else 'failed'} in {s.seconds:.2f} s" for s in report.steps]
    if not report.ok:
        lines.append(f"failed at {report.failed_step}: {report.error}")
    lines += [f"change in the inventory: {change}" for change in report.inventory_change]
    return ("ok" if report.ok else "failed"), "\n".join(lines)


def _silence(step: Any, context: ActionContext) -> Outcome:
    from opsplane.alerts import service as alerts

    now = context.clock.now()
    with context.store.session() as session:
        silence = alerts.create_silence(
            session, matchers=step.matchers, author=context.actor, comment=step.comment or context.run_label,
            starts_at=now, ends_at=now + timedelta(seconds=step.duration), now=now, actor=context.actor)
    return "ok", (f"silence {silence.id} mutes {' '.join(map(str, silence.matchers))} until "
                  f"{silence.ends_at.isoformat(timespec='seconds')}")


def _flush_cache(step: Any, context: ActionContext) -> Outcome:
    from opsplane.cache.client import CacheUnreachable
    from opsplane.cache.flows import flush

    try:
        done = flush(context.store, context.inventory, step.target, actor=context.actor, clock=context.clock,
                     environ=context.environ, reason=context.run_label)
    except CacheUnreachable as exc:
        return "failed", f"cache {exc}"
    return "ok", f"flushed cache {step.target} at {done.address}: {done.keys} keys deleted"


def _warm_cache(step: Any, context: ActionContext) -> Outcome:
    from opsplane.cache.flows import warm, warmers

    running: dict[str, list[int]] = {}
    if context.inventory.runs_services:
        for status in _runtime(context).status():
            if status.state == "running" and status.port and "@" not in status.service:
                running.setdefault(status.service, []).append(status.port)
    found = warmers(context.inventory, step.target, context.environ, running)
    result = warm(context.store, step.target, found, actor=context.actor, clock=context.clock)
    lines = [f"{service} loaded {said.get('keys', '?')} keys into {step.target}"
             for service, said in result["warmed"].items()]
    lines += [f"not reached: {problem}" for problem in result["problems"]]
    return "ok", "\n".join(lines)


ADAPTERS: dict[str, Callable[[Any, ActionContext], Outcome]] = {
    "restart": _restart, "scale": _scale, "rollback": _rollback, "failover": _failover,
    "silence": _silence, "flush-cache": _flush_cache, "warm-cache": _warm_cache,
}
