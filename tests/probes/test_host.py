"""The host probe: the judgement on fixed readings, and one real reading of this machine."""

from __future__ import annotations

import time
from collections import namedtuple

import pytest

from opsplane.config.models import HostCheck
from opsplane.drivers.probes.host import HostProbe, HostReadings, cpu_busy
from opsplane.health.models import State
from tests.support.factories import host_target
from tests.support.probing import probe_once


class FixedReadings:
    """A host source that always reads the same figures."""

    def __init__(self, readings: HostReadings) -> None:
        self.readings = readings
        self.paths: list[str] = []

    async def read(self, path: str) -> HostReadings:
        self.paths.append(path)
        return self.readings


def host_probe(readings: HostReadings, **fields: object) -> HostProbe:
    return HostProbe(HostCheck(type="host", **fields), source=FixedReadings(readings))


async def test_all_figures_below_warning_are_ok_and_listed() -> None:
    result = await host_probe(HostReadings(0.41, 0.22, 0.05, 0.12)).probe()
    assert result.state is State.OK
    assert result.reason == "disk / 41%, memory 22%, cpu 5%, load 0.12/cpu"
    assert result.metrics == {"disk": 41.0, "memory": 22.0, "cpu": 5.0, "load_per_cpu": 0.12}


async def test_the_worst_figure_decides_and_only_bad_figures_are_named() -> None:
    result = await host_probe(HostReadings(0.93, 0.85, 0.10, 0.5)).probe()
    assert result.state is State.CRITICAL
    assert result.reason == "disk / 93% (critical at 90%), memory 85% (warning at 80%)"


@pytest.mark.parametrize(
    ("readings", "state", "reason"),
    [
        (HostReadings(0.1, 0.1, 0.8, 0.1), State.WARNING, "cpu 80% (warning at 75%)"),
        (HostReadings(0.1, 0.1, 0.1, 2.0), State.WARNING, "load 2.00/cpu (warning at 1.50/cpu)"),
        (HostReadings(0.1, 0.96, 0.1, 0.1), State.CRITICAL, "memory 96% (critical at 95%)"),
    ],
)
async def test_each_figure_has_its_own_thresholds(
    readings: HostReadings, state: State, reason: str
) -> None:
    result = await host_probe(readings).probe()
    assert (result.state, result.reason) == (state, reason)


async def test_thresholds_come_from_the_check() -> None:
    result = await host_probe(HostReadings(0.5, 0.1, 0.1, 0.1), disk_warning="40%").probe()
    assert (result.state, result.reason) == (State.WARNING, "disk / 50% (warning at 40%)")


async def test_the_source_reads_the_checked_path() -> None:
    source = FixedReadings(HostReadings(0.1, 0.1, 0.1, 0.1))
    await HostProbe(HostCheck(type="host", path="/var"), source=source).probe()
    assert source.paths == ["/var"]


def test_cpu_busy_counts_idle_and_iowait_as_idle() -> None:
    times = namedtuple("times", "user nice system idle iowait guest guest_nice")
    before = times(100, 0, 50, 800, 50, 0, 0)
    after = times(130, 0, 60, 850, 60, 0, 0)  # 40 busy of 100
    assert cpu_busy(before, after) == pytest.approx(0.4)
    assert cpu_busy(after, after) == 0.0


async def test_a_real_reading_of_this_machine() -> None:
    started = time.perf_counter()
    result = await probe_once(host_target(path="/"))
    elapsed = time.perf_counter() - started
    assert result.state in set(State)
    assert set(result.metrics) == {"disk", "memory", "cpu", "load_per_cpu"}
    for name in ("disk", "memory", "cpu"):
        assert 0 <= result.metrics[name] <= 100  # type: ignore[operator]
    assert elapsed >= 0.2  # the CPU figure is sampled over 0.2 s, not primed


async def test_a_missing_path_is_unknown() -> None:
    result = await probe_once(host_target(path="/no/such/mount"))
    assert (result.state, result.reason) == (State.UNKNOWN,
                                             "path /no/such/mount does not exist on this host")
