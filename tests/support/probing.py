"""Running a target's probe the way the control plane does: build_probe, then run_probe."""

from __future__ import annotations

from collections.abc import Mapping

from opsplane.clock import Clock
from opsplane.drivers.probes import build_probe, run_probe
from opsplane.health.models import ProbeResult
from opsplane.health.targets import CheckTarget


async def probe_once(
    target: CheckTarget,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> ProbeResult:
    """One run of `target`'s check within its timeout, secrets read from `environ`."""
    probe = build_probe(target, environ=environ, clock=clock)
    return await run_probe(probe, target.timeout)
