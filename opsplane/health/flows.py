"""Running checks: every target probed concurrently, results keyed by check id."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from opsplane.drivers.probes import Probe, build_probe, run_probe
from opsplane.errors import SecretError
from opsplane.health.models import ProbeResult, State
from opsplane.health.targets import CheckTarget


def prepare(target: CheckTarget, *, environ: Mapping[str, str] | None = None) -> Probe | ProbeResult:
    """The probe for `target`, or the UNKNOWN result to report when a secret it needs is missing."""
    try:
        return build_probe(target, environ=environ)
    except SecretError as exc:
        return ProbeResult(State.UNKNOWN, str(exc))


async def probe_target(
    target: CheckTarget, *, environ: Mapping[str, str] | None = None
) -> ProbeResult:
    """Run one target's check once; a missing secret is an UNKNOWN state, not an exception."""
    probe = prepare(target, environ=environ)
    if isinstance(probe, ProbeResult):
        return probe
    return await run_probe(probe, target.timeout)


async def probe_all(
    targets: Sequence[CheckTarget],
    *,
    environ: Mapping[str, str] | None = None,
    concurrency: int = 256,
) -> dict[str, ProbeResult]:
    """Results of every target, run concurrently (at most `concurrency` at once)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(target: CheckTarget) -> ProbeResult:
        async with gate:
            return await probe_target(target, environ=environ)

    results = await asyncio.gather(*(one(t) for t in targets))
    return {t.id: r for t, r in zip(targets, results, strict=True)}
