"""Doing a runbook's steps for real: an inventory check probed as `opsplane health` probes it,
a PromQL condition or query asked of the configured Prometheus or of `serve`'s API, a command
run as an argument list with a timeout, an action through `actions`. `LivePlatform` is the real
world; the runner takes anything with the same methods.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError
from opsplane.runbooks.actions import ActionContext, describe, run_action
from opsplane.store import Store

OUTPUT_READ = 64 * 1024  # bytes of a command's output kept while it runs (the end of it)


@dataclass(frozen=True)
class Finding:
    """What a look found: whether its condition holds, and the figures or reason behind it."""

    true: bool
    said: str
    values: tuple[float, ...] = ()  # the figures a query returned (NaN left out), for its thresholds


class StepPlatform(Protocol):
    """What a run's steps act on."""

    def check(self, reference: str) -> Finding: ...
    def promql(self, expr: str) -> Finding: ...
    def command(self, argv: list[str], *, timeout: float, environ: Mapping[str, str]) -> tuple[str, str]: ...
    def action(self, step: Any, *, actor: str, run_label: str) -> tuple[str, str]: ...
    def report(self, step: Any) -> tuple[str, str]: ...


class LivePlatform:
    """The inventory's real checks, metrics, programs and operations."""

    def __init__(self, inventory: Inventory, *, base_dir: Path, store: Store, clock: Clock,
                 environ: Mapping[str, str] | None = None,
                 samples: Callable[[], Any] | None = None) -> None:
        self.inventory = inventory
        self.base_dir = base_dir
        self.store = store
        self.clock = clock
        self.environ = dict(os.environ if environ is None else environ)
        # inside `serve`: its own sample store (a SeriesSource, or None while nothing is
        # scraped), so PromQL steps need no token to ask its API
        self.samples = samples

    def check(self, reference: str) -> Finding:
        """The inventory check COMPONENT/CHECK probed once, in the default environment; a bare
        COMPONENT probes each of its checks, true when every one is OK."""
        from opsplane.health.flows import probe_target
        from opsplane.health.models import State
        from opsplane.health.targets import check_targets

        component, _, name = reference.partition("/")
        found = [t for t in check_targets(self.inventory, only={component}) if not name or t.name == name]
        if not found:
            missing = f"no check {name!r}" if name else "no checks"
            raise OpsplaneError(f"{component} has {missing}")

        async def probe_all() -> list[Any]:
            return list(await asyncio.gather(*(probe_target(t, environ=self.environ) for t in found)))

        results = asyncio.run(probe_all())
        said = "\n".join(f"{t.id}: {r.state.value} {r.reason}".rstrip()
                         for t, r in zip(found, results, strict=True))
        return Finding(all(r.state is State.OK for r in results), said)

    def promql(self, expr: str) -> Finding:
        """`expr` evaluated now: true when some series (or the scalar) is not zero."""
        from opsplane.metrics.promql import PromQLError
        from opsplane.metrics.remote import number

        if self.samples is not None and self.inventory.metrics.source == "builtin":
            return self._promql_here(expr, self.samples)
        client = self._prometheus()
        try:
            data = client.query(expr, self.clock.now().timestamp())
        except PromQLError as exc:
            raise OpsplaneError(str(exc)) from None
        finally:
            client.close()
        kind, result = data["resultType"], data["result"]
        if kind in ("scalar", "string"):
            value = number(result[1]) if kind == "scalar" else math.nan
            return Finding(kind == "scalar" and value != 0 and not math.isnan(value), f"{expr} = {result[1]}",
                           () if math.isnan(value) else (value,))
        if not result:
            return Finding(False, f"{expr}: no series")
        lines, true, values = [], False, []
        for series in result[:20]:
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted(series["metric"].items()))
            raw = series["value"][1] if kind == "vector" else (series["values"] or [[0, "NaN"]])[-1][1]
            value = number(raw)
            true = true or (value != 0 and not math.isnan(value))
            lines.append(f"{{{labels}}} {raw}")
        for series in result:
            raw = series["value"][1] if kind == "vector" else (series["values"] or [[0, "NaN"]])[-1][1]
            if not math.isnan(number(raw)):
                values.append(number(raw))
        if len(result) > 20:
            lines.append(f"… and {len(result) - 20} more series")
        return Finding(true, "\n".join(lines), tuple(values))

    def _promql_here(self, expr: str, samples: Callable[[], Any]) -> Finding:
        """`expr` over `serve`'s own samples, now."""
        from opsplane.metrics.promql import InstantVector, Matrix, MemorySource, PromQLError, Scalar, instant

        try:
            value = instant(expr, samples() or MemorySource(), self.clock.now().timestamp())
        except PromQLError as exc:
            raise OpsplaneError(str(exc)) from None
        if isinstance(value, Scalar):
            true = value.value != 0 and not math.isnan(value.value)
            return Finding(true, f"{expr} = {value.value:g}")
        if isinstance(value, InstantVector):
            rows = [(labels, v) for labels, v in value.samples]
        elif isinstance(value, Matrix):
            rows = [(labels, samples[-1][1] if samples else math.nan) for labels, samples in value.series]
        else:
            return Finding(False, f"{expr} = {value.value}")
        if not rows:
            return Finding(False, f"{expr}: no series")
        lines = []
        for labels, v in rows[:20]:
            named = ", ".join(f'{key}="{label}"' for key, label in sorted(labels))
            lines.append(f"{{{named}}} {v:g}")
        if len(rows) > 20:
            lines.append(f"… and {len(rows) - 20} more series")
        return Finding(any(v != 0 and not math.isnan(v) for _, v in rows), "\n".join(lines))

    def _prometheus(self) -> Any:
        """The configured Prometheus, or `serve`'s API, which answers in the same shape."""
        from opsplane.metrics.remote import query_client

        return query_client(self.inventory, self.environ)

    def command(self, argv: list[str], *, timeout: float, environ: Mapping[str, str]) -> tuple[str, str]:
        """Run `argv` (never through a shell) in the inventory's directory; (ok | failed, output)."""
        return run_command(argv, timeout=timeout, cwd=self.base_dir, environ={**self.environ, **environ})

    def report(self, step: Any) -> tuple[str, str]:
        """The opsplane read the step names, judged: (ok | warned | failed, what it found)."""
        from opsplane.runbooks.reads import ReadContext, read

        found = read(step, ReadContext(self.inventory, self.base_dir, self.store, self.clock, self.environ))
        return found.outcome, found.said

    def action(self, step: Any, *, actor: str, run_label: str) -> tuple[str, str]:
        context = ActionContext(self.inventory, self.base_dir, self.store, actor, self.clock, self.environ,
                                run_label)
        return run_action(step, context)


def run_command(argv: list[str], *, timeout: float, cwd: Path,
                environ: Mapping[str, str]) -> tuple[str, str]:
    """`argv` run with stdout and stderr together, killed after `timeout` seconds; the outcome
    (ok when it exits 0) and the end of its output with how it ended."""
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=dict(environ), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return "failed", f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        text = output[-OUTPUT_READ:].decode(errors="replace")
        return "failed", f"{text}\n(killed after {timeout:g} s)".lstrip("\n")
    text = output[-OUTPUT_READ:].decode(errors="replace").rstrip("\n")
    if process.returncode == 0:
        return "ok", text
    return "failed", f"{text}\n(exit code {process.returncode})".lstrip("\n")


def plan_line(step: Any) -> str:
    """What a step does, in one line: for a dry run, the question before it, and `show`."""
    kind = step.kind
    if kind in ("check", "wait_until"):
        what = f"check {step.check}" if step.check else f"PromQL {step.promql}"
        if kind == "check":
            return what
        return f"wait until {what} holds (look every {step.every:g} s, give up after {step.timeout:g} s)"
    if kind == "query":
        limits = [f"{word} above {limit:g}" for word, limit in
                  (("warn", step.warn_above), ("fail", step.fail_above)) if limit is not None]
        return f"query {step.promql}" + (f" ({', '.join(limits)})" if limits else "")
    if kind == "report":
        return f"report {step.read}"
    if kind == "command":
        from opsplane.health.targets import command_line

        return f"run {command_line(step.argv)} (timeout {step.timeout:g} s)"
    if kind == "action":
        return describe(step)
    if kind == "decide":
        ways = ", ".join(f"{outcome} -> {target}" for outcome, target in step.when.items())
        otherwise = f", otherwise -> {step.otherwise}" if step.otherwise else ""
        return f"decide on {step.step}: {ways}{otherwise}"
    if kind == "confirm":
        return f"ask: {step.prompt}"
    if kind == "approve":
        return f"wait for {role_with_article(step.role)} other than the requester to approve" + (
            f": {step.prompt}" if step.prompt else "")
    return f"note: {step.text}"


def role_with_article(role: str) -> str:
    """'a responder', 'an operator', 'an admin'."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"
