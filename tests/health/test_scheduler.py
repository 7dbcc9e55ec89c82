"""The scheduler on virtual time: slots, spreading, no overlap, skips, lateness."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from opsplane.config.models import TcpCheck
from opsplane.health.models import ProbeResult, State
from opsplane.health.scheduler import ProbeScheduler, phase
from opsplane.health.targets import CheckTarget


class VirtualTime:
    """Time that moves only when the scheduler sleeps; probes may wait on it too."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        # Let every runnable task finish its step before time jumps.
        for _ in range(5):
            await asyncio.sleep(0)
        self.now += delay
        for when, fut in list(self._waiters):
            if when <= self.now and not fut.done():
                fut.set_result(None)
        self._waiters = [(w, f) for w, f in self._waiters if not f.done()]
        await asyncio.sleep(0)

    async def wait(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + delay, fut))
        await fut


def target(name: str, interval: float) -> CheckTarget:
    return CheckTarget(component=name, section="services", name="tcp",
                       check=TcpCheck(type="tcp"), host="127.0.0.1", port=1,
                       url=None, interval=interval, timeout=1.0)


async def run_for(scheduler: ProbeScheduler, clock: VirtualTime, seconds: float) -> None:
    task = asyncio.create_task(scheduler.run_forever())
    while clock.now < seconds:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_phase_is_stable_and_inside_the_interval() -> None:
    assert phase("backend/http", 10) == phase("backend/http", 10)
    offsets = [phase(f"svc-{i}/http", 10) for i in range(1000)]
    assert all(0 <= o < 10 for o in offsets)
    # spread: every one-second bucket of the interval gets a fair share (expected 100 each)
    buckets = Counter(int(o) for o in offsets)
    assert min(buckets.values()) > 60 and max(buckets.values()) < 140


async def test_each_check_runs_once_per_interval_in_its_own_slot() -> None:
    clock = VirtualTime()
    starts: dict[str, list[float]] = {}

    async def run(t: CheckTarget) -> ProbeResult:
        starts.setdefault(t.id, []).append(clock.now)
        return ProbeResult(State.OK, "fine")

    lateness: list[float] = []
    targets = [target(f"svc-{i}", 10.0) for i in range(50)]
    scheduler = ProbeScheduler(targets, run=run, on_result=lambda t, r, late: lateness.append(late),
                               time=clock.time, sleep=clock.sleep)
    await run_for(scheduler, clock, 35.0)
    for t in targets:
        runs = starts[t.id]
        first = phase(t.id, 10.0)
        assert runs[:3] == pytest.approx([first, first + 10, first + 20])
    assert max(lateness) == pytest.approx(0.0)


async def test_a_run_still_going_at_its_next_slot_skips_that_slot() -> None:
    clock = VirtualTime()
    runs: list[float] = []
    skipped: list[str] = []

    async def slow(t: CheckTarget) -> ProbeResult:
        runs.append(clock.now)
        await clock.wait(25.0)  # longer than two intervals
        return ProbeResult(State.CRITICAL, "slow")

    scheduler = ProbeScheduler([target("db", 10.0)], run=slow, on_result=lambda *a: None,
                               on_skip=lambda t: skipped.append(t.id), time=clock.time,
                               sleep=clock.sleep)
    await run_for(scheduler, clock, 41.0)
    first = phase("db/tcp", 10.0)
    # starts at first, skips first+10 and first+20 (still running), runs again at first+30
    assert runs == pytest.approx([first, first + 30])
    assert skipped == ["db/tcp", "db/tcp"]


async def test_results_report_the_state_the_probe_returned() -> None:
    clock = VirtualTime()
    seen: list[tuple[str, State]] = []

    async def run(t: CheckTarget) -> ProbeResult:
        return ProbeResult(State.CRITICAL if t.component == "down" else State.OK, "x")

    scheduler = ProbeScheduler([target("up", 5.0), target("down", 5.0)], run=run,
                               on_result=lambda t, r, late: seen.append((t.component, r.state)),
                               time=clock.time, sleep=clock.sleep)
    await run_for(scheduler, clock, 5.0)
    assert sorted(seen) == [("down", State.CRITICAL), ("up", State.OK)]


async def test_with_no_checks_it_idles_until_cancelled_instead_of_returning() -> None:
    # serve reports itself healthy only while its tasks run: an inventory that is only
    # scraped, with no checks, must not look like a stopped scheduler.
    async def run(t: CheckTarget) -> ProbeResult:
        raise AssertionError("nothing to run")

    task = asyncio.ensure_future(ProbeScheduler([], run=run, on_result=lambda t, r, late: None).run_forever())
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_now_runs_a_check_outside_its_slot_and_leaves_its_slots_where_they_were() -> None:
    clock = VirtualTime()
    runs: list[tuple[str, float]] = []
    results: list[str] = []

    async def run(t: CheckTarget) -> ProbeResult:
        runs.append((t.id, clock.now))
        return ProbeResult(State.OK, "fine")

    scheduler = ProbeScheduler([target("payments", 60.0), target("orders", 60.0)], run=run,
                               on_result=lambda t, r, late: results.append(t.id),
                               time=clock.time, sleep=clock.sleep)
    task = asyncio.create_task(scheduler.run_forever())
    first = phase("payments/tcp", 60.0)
    while clock.now <= first:  # past its first slot
        await asyncio.sleep(0)
    await asyncio.gather(*scheduler.run_now(["payments/tcp", "nothing/such"]))
    while clock.now < first + 61:  # and past its second slot
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    at = [when for check, when in runs if check == "payments/tcp"]
    assert at[0] == pytest.approx(first) and at[2] == pytest.approx(first + 60)
    assert first < at[1] < first + 60  # the run asked for, at once, between the slots
    orders = [when for check, when in runs if check == "orders/tcp"]
    assert orders == pytest.approx([phase("orders/tcp", 60.0)])
    assert results.count("payments/tcp") == 3  # the result of the run asked for is reported too


async def test_run_now_of_a_check_in_flight_waits_for_that_run_instead_of_starting_another() -> None:
    clock = VirtualTime()
    runs: list[float] = []
    release = asyncio.Event()

    async def slow(t: CheckTarget) -> ProbeResult:
        runs.append(clock.now)
        await release.wait()
        return ProbeResult(State.CRITICAL, "refuses connections")

    scheduler = ProbeScheduler([target("payments", 60.0)], run=slow, on_result=lambda *a: None,
                               time=clock.time, sleep=clock.sleep)
    [first] = scheduler.run_now(["payments/tcp"])
    await asyncio.sleep(0)
    [again] = scheduler.run_now(["payments/tcp"])
    assert again is first and runs == [0.0]
    release.set()
    await first
    [fresh] = scheduler.run_now(["payments/tcp"])  # done: the next ask runs it again
    await fresh
    assert len(runs) == 2
