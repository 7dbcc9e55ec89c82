"""The probe scheduler: every check on its own interval, spread evenly, never overlapping.

Each check gets a fixed phase inside its interval, derived from a hash of its id, so that a
thousand checks with a 10 s interval start at a steady hundred per second instead of all at
once, and keep the same slots across restarts. Slots are fixed-rate (no drift): a run that
is still going when its next slot comes makes that slot count as skipped.

`run_now` runs some checks at once, outside their slots (`serve` does when the runtime says a
service's process exited): their slots stay where they were, and a check already running is
not started twice.
"""

from __future__ import annotations

import asyncio
import heapq
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opsplane.health.models import ProbeResult
from opsplane.health.targets import CheckTarget

RunCheck = Callable[[CheckTarget], Awaitable[ProbeResult]]
OnResult = Callable[[CheckTarget, ProbeResult, float], None]
OnSkip = Callable[[CheckTarget], None]
Sleep = Callable[[float], Awaitable[None]]


# Slots closer than this are started now rather than slept for: the event loop's timers have
# millisecond resolution, and a shorter sleep wakes at once and spins.
_RESOLUTION = 0.001


def phase(check_id: str, interval: float) -> float:
    """Offset of a check's slots within its interval: stable and uniformly spread."""
    return (zlib.crc32(check_id.encode()) / 2**32) * interval


class ProbeScheduler:
    """Runs `run(target)` for every target on its interval; reports with `on_result`.

    `on_result(target, result, lateness)` receives how late the run started against its slot,
    in seconds. At most `max_in_flight` checks run at once; the rest wait their turn (and
    count as late).
    """

    def __init__(
        self,
        targets: Sequence[CheckTarget],
        *,
        run: RunCheck,
        on_result: OnResult,
        on_skip: OnSkip | None = None,
        max_in_flight: int = 2000,
        time: Callable[[], float] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.targets = list(targets)
        self._run = run
        self._on_result = on_result
        self._on_skip = on_skip
        self._gate = asyncio.Semaphore(max_in_flight)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._index = {t.id: i for i, t in enumerate(self.targets)}
        # The event loop's clock unless a test gives a virtual one (with a matching sleep).
        self._time = time
        self._sleep = sleep

    async def run_forever(self) -> None:
        """Schedule until cancelled; on cancellation, the checks in flight are cancelled too."""
        loop = asyncio.get_running_loop()
        clock = self._time or loop.time
        start = clock()
        heap = [(start + phase(t.id, t.interval), i) for i, t in enumerate(self.targets)]
        heapq.heapify(heap)
        if not heap:  # nothing to run (an inventory of scrape targets only): idle until cancelled
            await loop.create_future()
        try:
            while heap:
                due, index = heap[0]
                now = clock()
                if due - now > _RESOLUTION:
                    await self._sleep(due - now)
                    continue
                target = self.targets[index]
                heapq.heapreplace(heap, (due + target.interval, index))
                if index in self._in_flight:
                    if self._on_skip:
                        self._on_skip(target)
                    continue
                self._start(index, due)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def run_now(self, check_ids: Sequence[str]) -> list[asyncio.Task[None]]:
        """Run these checks now, outside their slots; the runs to wait for, results reported
        with `on_result` as usual (lateness 0). A check already running is not started again:
        its run in flight is returned instead. Unknown ids are ignored."""
        clock = self._time or asyncio.get_running_loop().time
        runs = []
        for check_id in check_ids:
            index = self._index.get(check_id)
            if index is not None:
                runs.append(self._in_flight.get(index) or self._start(index, clock()))
        return runs

    def _start(self, index: int, due: float) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._one(index, due))
        self._in_flight[index] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(index, done))
        return task

    def _finished(self, index: int, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._in_flight.get(index) is task:
            del self._in_flight[index]

    async def _one(self, index: int, due: float) -> None:
        target = self.targets[index]
        try:
            async with self._gate:
                lateness = (self._time or asyncio.get_running_loop().time)() - due
                result = await self._run(target)
            self._on_result(target, result, lateness)
        finally:  # free the slot before the next step of the loop (the done callback is later)
            current = asyncio.current_task()
            if current is not None:
                self._finished(index, current)
