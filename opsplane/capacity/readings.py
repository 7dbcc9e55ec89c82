"""Reading each resource's use now: the host's CPU and memory (psutil), filesystems (statvfs),
directories against their configured size (their files' bytes), and from PromQL each service's
database pool in use and request rate.

A resource that cannot be read is left out of the values and named in the problems with why;
nothing here raises for a resource that is missing or a query that fails.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplane.capacity.models import CapacitySettings, CapacityThresholds

Query = Callable[[str], list[tuple[dict[str, str], float]]]
POOL_USE = "sum by (service) (db_pool_connections_in_use) / sum by (service) (db_pool_size > 0)"
REQUEST_RATE = "sum by (service) (rate(http_requests_total[5m]))"


def filesystem_use(path: str) -> float:
    """The share of a filesystem in use as `df` counts it (space reserved for root aside)."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    return used / (used + available) if used + available else 0.0


def directory_bytes(path: Path) -> int:
    """The bytes of every file under `path` (links not followed)."""
    total = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


@dataclass
class HostReader:
    """CPU busy since the previous reading (over a short sample at the first) and memory in use."""

    first_sample: float = 0.5
    _before: Any = None

    def cpu(self) -> float:
        import psutil

        from opsplane.drivers.probes.host import cpu_busy

        if self._before is None:
            self._before = psutil.cpu_times()
            import time

            time.sleep(self.first_sample)
        now = psutil.cpu_times()
        busy = cpu_busy(self._before, now)
        self._before = now
        return busy

    def memory(self) -> float:
        import psutil

        return float(psutil.virtual_memory().percent) / 100


@dataclass
class Readings:
    values: dict[str, float] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def read_all(settings: CapacitySettings, *, base_dir: Path, host: HostReader | None,
             query: Query | None) -> Readings:
    """Every resource's value now (blocking: call off the event loop)."""
    found = Readings()
    if host is not None:
        _read(found, "cpu", host.cpu)
        _read(found, "memory", host.memory)
    for disk in settings.disks:
        _read(found, f"disk:{disk}", lambda d=disk: filesystem_use(d))  # type: ignore[misc]
    for name, directory in settings.directories.items():
        path = Path(directory.path) if Path(directory.path).is_absolute() else base_dir / directory.path
        _read(found, f"dir:{name}", lambda p=path, s=directory.size: directory_bytes(p) / s)  # type: ignore[misc]
    if query is not None:
        for kind, expr in (("db_pool", POOL_USE), ("requests", REQUEST_RATE)):
            try:
                series = query(expr)
            except Exception as exc:  # the Prometheus away, or nothing scraped yet
                found.problems[kind] = f"{expr}: {exc}"
                continue
            for labels, value in series:
                if math.isfinite(value):
                    found.values[f"{kind}:{labels.get('service', '-')}"] = value
    return found


def _read(found: Readings, resource: str, read: Callable[[], float]) -> None:
    try:
        found.values[resource] = float(read())
    except OSError as exc:
        found.problems[resource] = f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": ")


def kind_of(resource: str) -> str:
    return resource.partition(":")[0]


def threshold_of(resource: str, thresholds: CapacityThresholds) -> float | None:
    """The trigger a resource is held against (None: trended only)."""
    return {"cpu": thresholds.cpu, "memory": thresholds.memory, "disk": thresholds.disk,
            "dir": thresholds.disk, "db_pool": thresholds.db_pool,
            "requests": thresholds.request_rate}.get(kind_of(resource))
