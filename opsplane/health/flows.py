"""Running checks: every target probed concurrently, results keyed by check id."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from opsplane.drivers.probes import Probe, build_probe, run_probe
from opsplane.drivers.probes.resolve import Resolver
from opsplane.errors import SecretError
from opsplane.health.models import ProbeResult, State
from opsplane.health.targets import CheckTarget


def prepare(
    target: CheckTarget,
    *,
    environ: Mapping[str, str] | None = None,
    resolver: Resolver | None = None,
) -> Probe | ProbeResult:
    """The probe for `target`, or the UNKNOWN result to report when a secret it needs is missing."""
    try:
        return build_probe(target, environ=environ, resolver=resolver)
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
    """Results of every target, run concurrently (at most `concurrency` at once).

    Checks run together share one event loop, and a latency is the time between two events
    of the loop: whatever else the loop does in between is counted in it. So every probe is
    built before any runs (the first postgres check imports psycopg, the first tls check
    cryptography: tens of milliseconds), and the probes start one per turn of the loop rather
    than all in the same turn, where the first would wait for every other one's connection
    set-up before its own answer is read. Starting them all still takes only as long as
    setting them up; see docs/health.md for the figures.
    """
    prepared = [prepare(target, environ=environ) for target in targets]
    gate = asyncio.Semaphore(concurrency)

    async def one(target: CheckTarget, probe: Probe | ProbeResult) -> ProbeResult:
        if isinstance(probe, ProbeResult):
            return probe
        async with gate:
            return await run_probe(probe, target.timeout)

    tasks: list[asyncio.Task[ProbeResult]] = []
    async with asyncio.TaskGroup() as group:
        for target, probe in zip(targets, prepared, strict=True):
            tasks.append(group.create_task(one(target, probe)))
            if not isinstance(probe, ProbeResult):
                await asyncio.sleep(0)  # the next start waits for the next turn of the loop
    return {t.id: task.result() for t, task in zip(targets, tasks, strict=True)}
