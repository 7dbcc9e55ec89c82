"""Host probe: disk, memory, CPU and load of the machine the control plane runs on.

The readings come from a `HostSource` (psutil by default), so the judgement can be tested
with fixed figures.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Protocol

import psutil

from opsplane.config.models import HostCheck
from opsplane.drivers.probes.base import ProbeFailed
from opsplane.health.models import Metric, ProbeResult, State, Threshold, worst
from opsplane.health.targets import CheckTarget

CPU_SAMPLE_SECONDS = 0.2


@dataclass(frozen=True)
class HostReadings:
    """One look at the host: ratios from 0 to 1, and the 1-minute load per CPU."""

    disk: float
    memory: float
    cpu: float
    load_per_cpu: float


class HostSource(Protocol):
    async def read(self, path: str) -> HostReadings:
        """Current readings, with disk usage of the filesystem holding `path`."""
        ...


class PsutilSource:
    """Readings of this machine through psutil."""

    def __init__(self, cpu_sample: float = CPU_SAMPLE_SECONDS) -> None:
        self.cpu_sample = cpu_sample

    async def read(self, path: str) -> HostReadings:
        before = psutil.cpu_times()
        # statvfs can hang on a dead network mount: keep it off the event loop.
        disk_task = asyncio.ensure_future(asyncio.to_thread(psutil.disk_usage, path))
        await asyncio.sleep(self.cpu_sample)
        cpu = cpu_busy(before, psutil.cpu_times())
        try:
            disk = await disk_task
        except FileNotFoundError:
            raise ProbeFailed(f"path {path} does not exist on this host", State.UNKNOWN) from None
        load_1m = os.getloadavg()[0]
        return HostReadings(
            disk=disk.percent / 100,
            memory=psutil.virtual_memory().percent / 100,
            cpu=cpu,
            load_per_cpu=load_1m / (psutil.cpu_count() or 1),
        )


def cpu_busy(before: object, after: object) -> float:
    """The busy fraction of all CPUs between two `psutil.cpu_times()` readings.

    Same arithmetic as psutil.cpu_percent: idle and iowait are idle; guest time is already
    counted in user time on Linux, so it is not counted twice.
    """

    def split(times: object) -> tuple[float, float]:
        fields = times._asdict()  # type: ignore[attr-defined]
        total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total, total - idle

    total_1, busy_1 = split(before)
    total_2, busy_2 = split(after)
    elapsed = total_2 - total_1
    if elapsed <= 0:
        return 0.0
    return min(max((busy_2 - busy_1) / elapsed, 0.0), 1.0)


class HostProbe:
    """Judges each reading against the check's thresholds; the worst one decides."""

    def __init__(self, check: HostCheck, *, source: HostSource | None = None) -> None:
        self.check = check
        self.source = source or PsutilSource()

    @property
    def address(self) -> None:
        return None  # this machine; its reasons name the disk they measured

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()  # sends none

    @classmethod
    def for_target(cls, target: CheckTarget, *, source: HostSource | None = None) -> HostProbe:
        if not isinstance(target.check, HostCheck):
            raise TypeError(f"{target.id} is not a host check")
        return cls(target.check, source=source)

    async def probe(self) -> ProbeResult:
        """Reason "disk / 41%, memory 22%, cpu 5%, load 0.12/cpu" when all is well, else only the
        figures past a threshold; metrics disk, memory, cpu (percent) and load_per_cpu."""
        return self.judge(await self.source.read(self.check.path))

    def judge(self, readings: HostReadings) -> ProbeResult:
        """The result for `readings`, by the check's thresholds."""
        check = self.check
        figures = [
            (f"disk {check.path}", readings.disk,
             Threshold(check.disk_warning, check.disk_critical), _pct),
            ("memory", readings.memory,
             Threshold(check.memory_warning, check.memory_critical), _pct),
            ("cpu", readings.cpu, Threshold(check.cpu_warning, check.cpu_critical), _pct),
            ("load", readings.load_per_cpu,
             Threshold(check.load_warning, check.load_critical), _load),
        ]
        judged = [(name, threshold.judge(value), show(value), threshold, show)
                  for name, value, threshold, show in figures]
        state = worst(s for _, s, *_ in judged)
        metrics: dict[str, Metric] = {
            "disk": round(readings.disk * 100, 1),
            "memory": round(readings.memory * 100, 1),
            "cpu": round(readings.cpu * 100, 1),
            "load_per_cpu": round(readings.load_per_cpu, 2),
        }
        if state is State.OK:
            reason = ", ".join(f"{name} {shown}" for name, _, shown, *_ in judged)
            return ProbeResult(State.OK, reason, metrics=metrics)
        parts = []
        for name, figure_state, shown, threshold, show in judged:
            if figure_state is State.OK:
                continue
            limit = threshold.critical if figure_state is State.CRITICAL else threshold.warning
            parts.append(f"{name} {shown} ({figure_state.value.lower()} at {show(limit or 0)})")
        return ProbeResult(state, ", ".join(parts), metrics=metrics)


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _load(value: float) -> str:
    return f"{value:.2f}/cpu"
