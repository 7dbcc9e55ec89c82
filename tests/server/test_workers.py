"""The worker seam: workers start in order and stop in the reverse one, are woken early, and
say how they are doing; one that crashes or ends is a problem /health reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import LoopWorker, WorkerContext, WorkerSet, WorkerState


@pytest.fixture
def ctx(tmp_path: Path) -> WorkerContext:
    return WorkerContext(inventory=loads("platform: {name: shop}\n"), store=Store.open(f"sqlite:///{tmp_path}/o.db"),
                         clock=ManualClock(), env="production", metrics=ControlPlaneMetrics(process=False))


class Rounds(LoopWorker):
    """A loop that runs a round each time it is woken, and an hour after the last otherwise."""

    def __init__(self, name: str, ctx: WorkerContext, said: list[str], *, fail_at: int | None = None) -> None:
        super().__init__(name, ctx)
        self.said, self.fail_at, self.rounds = said, fail_at, 0

    async def opening(self) -> None:
        self.said.append(f"start {self.name}")

    async def closing(self) -> None:
        self.said.append(f"stop {self.name}")

    async def run(self) -> None:
        while True:
            self.expect(3600)
            await self.pause(3600)
            self.rounds += 1
            if self.rounds == self.fail_at:
                raise RuntimeError("the disk is full\nsecond line")
            self.ran()


async def _until(condition: object) -> None:
    async with asyncio.timeout(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_workers_start_in_order_stop_in_reverse_and_are_woken_early(ctx: WorkerContext) -> None:
    said: list[str] = []
    first, second = Rounds("first", ctx, said), Rounds("second", ctx, said)
    workers = WorkerSet([first, second])
    ctx.workers = workers
    assert [h.state for h in workers.health()] == [WorkerState.STARTING] * 2
    await workers.start()
    assert [h.state for h in workers.health()] == [WorkerState.RUNNING] * 2
    assert [h.last_run for h in workers.health()] == [None, None]

    ctx.wake("second")
    await _until(lambda: second.rounds == 1)
    assert first.rounds == 0  # only the one woken
    health = second.health()
    assert health.last_run == ctx.clock.now() and health.lag == 0.0 and health.problem is None

    await workers.stop()
    assert said == ["start first", "start second", "stop second", "stop first"]
    assert [h.state for h in workers.health()] == [WorkerState.STOPPED] * 2


async def test_a_worker_that_crashes_says_why_and_the_others_go_on(ctx: WorkerContext) -> None:
    said: list[str] = []
    steady, fragile = Rounds("steady", ctx, said), Rounds("fragile", ctx, said, fail_at=1)
    workers = WorkerSet([steady, fragile])
    await workers.start()
    try:
        fragile.wake()
        await _until(lambda: fragile.health().state is WorkerState.CRASHED)
        health = fragile.health()
        assert health.errors == 1 and health.last_error == "RuntimeError: the disk is full"
        assert health.problem == "worker fragile crashed: RuntimeError: the disk is full"
        assert steady.health().problem is None and steady.health().state is WorkerState.RUNNING
    finally:
        await workers.stop()
    assert fragile.health().state is WorkerState.CRASHED  # stopping does not hide the crash


def test_a_worker_behind_its_schedule_for_long_is_stuck(ctx: WorkerContext) -> None:
    worker = Rounds("late", ctx, [])
    worker.expect(-30)
    assert worker.health().problem is None  # late, not stuck
    worker.expect(-120)
    assert worker.health().problem == "worker late is 120 s behind its schedule"


def test_two_workers_may_not_share_a_name(ctx: WorkerContext) -> None:
    with pytest.raises(ValueError, match="share a name"):
        WorkerSet([Rounds("same", ctx, []), Rounds("same", ctx, [])])
