"""The last hour of every check's results, downsampled into fixed time buckets.

`opsplane serve` may watch ten thousand checks under a tight memory budget, and the dashboard
only draws a small chart per component, so results are not kept one by one: each check owns a
ring of buckets (by default 60 of 60 s) holding how many runs ended in the bucket, how many
were not OK, the worst state, and the sum and maximum of their durations. The rings of all
checks live side by side in a handful of flat `array`s (11 bytes per bucket, about 6.6 MB for
10,000 checks over an hour) instead of one Python object per result. Counts are single bytes
that stop at 255 runs per bucket (a check every quarter second); past that the bucket keeps
the mean of its first 255 runs, which is all a sparkline needs.

Time comes from an injected clock: buckets are numbered on its monotonic seconds, and wall
times are derived for display only.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsplane.clock import Clock, SystemClock
from opsplane.health.models import ProbeResult, State

_COUNT_LIMIT = 0xFF  # counts are single bytes: they saturate instead of wrapping
_BY_SEVERITY = sorted(State, key=lambda s: s.severity)


@dataclass(frozen=True)
class Bucket:
    """What happened in one time bucket: `worst` is None and the latencies are None when no
    run ended in it."""

    start: datetime
    count: int
    failures: int
    worst: State | None
    mean_latency: float | None
    max_latency: float | None


@dataclass(frozen=True)
class Series:
    """Consecutive buckets, oldest first, ending with the bucket that holds `now`."""

    width: float
    buckets: tuple[Bucket, ...]

    @property
    def runs(self) -> int:
        return sum(b.count for b in self.buckets)

    @property
    def failures(self) -> int:
        return sum(b.failures for b in self.buckets)

    def mean_latencies(self) -> list[float | None]:
        return [b.mean_latency for b in self.buckets]


class ProbeHistory:
    """Per-check rings of result buckets covering the last `window` seconds.

    `record` is on the scheduler's hot path: a dictionary lookup and a few array writes.
    Checks not named at construction are ignored (the inventory is fixed while serving).
    """

    def __init__(
        self,
        check_ids: Iterable[str],
        *,
        window: float = 3600.0,
        bucket: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        if bucket <= 0 or window < bucket:
            raise ValueError(f"history needs 0 < bucket <= window; got bucket {bucket}, window {window}")
        self.width = float(bucket)
        self.size = math.ceil(window / bucket)
        self.clock = clock or SystemClock()
        self._index = {check_id: i for i, check_id in enumerate(dict.fromkeys(check_ids))}
        slots = len(self._index) * self.size
        self._count = array("B", [0]) * slots
        self._failures = array("B", [0]) * slots
        self._worst = array("B", [0]) * slots  # severity + 1; 0 means empty
        self._latency_sum = array("f", [0.0]) * slots
        self._latency_max = array("f", [0.0]) * slots
        # The newest bucket number each check has written; slots between it and the present
        # hold data one lap old and are cleared on the next write, or skipped when read.
        self._newest = array("q", [-1] * len(self._index))

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._index

    def record(self, check_id: str, result: ProbeResult) -> None:
        """Count `result` in the current bucket of `check_id`."""
        self.add(check_id, result.state, result.duration)

    def add(self, check_id: str, state: State, duration: float) -> None:
        """Count one run ending now with `state` after `duration` seconds."""
        index = self._index.get(check_id)
        if index is None:
            return
        number = int(self.clock.monotonic() // self.width)
        newest = self._newest[index]
        if number < newest:  # a result from before the newest bucket: nowhere to put it
            return
        base = index * self.size
        if number > newest:
            self._clear(base, newest, number)
            self._newest[index] = number
        slot = base + number % self.size
        if self._count[slot] < _COUNT_LIMIT:
            self._count[slot] += 1
            if state is not State.OK:
                self._failures[slot] += 1
            self._latency_sum[slot] += duration
        self._worst[slot] = max(self._worst[slot], state.severity + 1)
        if duration > self._latency_max[slot]:
            self._latency_max[slot] = duration

    def _clear(self, base: int, newest: int, number: int) -> None:
        first = max(newest + 1, number - self.size + 1)
        for bucket_number in range(first, number + 1):
            slot = base + bucket_number % self.size
            self._count[slot] = 0
            self._failures[slot] = 0
            self._worst[slot] = 0
            self._latency_sum[slot] = 0.0
            self._latency_max[slot] = 0.0

    def series(self, check_ids: Sequence[str]) -> Series:
        """The buckets of `check_ids` merged (counts added, latency averaged over all runs,
        worst of the worst): one check, or all checks of a component."""
        mono = self.clock.monotonic()
        wall = self.clock.now()
        current = int(mono // self.width)
        numbers = range(current - self.size + 1, current + 1)
        indexes = [self._index[c] for c in check_ids if c in self._index]
        buckets = []
        for number in numbers:
            start = wall - timedelta(seconds=mono - number * self.width)
            buckets.append(self._merged(indexes, number, start))
        return Series(self.width, tuple(buckets))

    def _merged(self, indexes: list[int], number: int, start: datetime) -> Bucket:
        count = failures = worst = 0
        latency_sum = latency_max = 0.0
        for index in indexes:
            if number > self._newest[index] or number <= self._newest[index] - self.size:
                continue  # not written yet in this lap, or already overwritten
            slot = index * self.size + number % self.size
            count += self._count[slot]
            failures += self._failures[slot]
            worst = max(worst, self._worst[slot])
            latency_sum += self._latency_sum[slot]
            latency_max = max(latency_max, self._latency_max[slot])
        if not count:
            return Bucket(start, 0, 0, None, None, None)
        return Bucket(start, count, failures, _BY_SEVERITY[worst - 1], latency_sum / count, latency_max)

    def memory_bytes(self) -> int:
        """Bytes held by the rings: what the history costs `serve`."""
        arrays = (self._count, self._failures, self._worst, self._latency_sum, self._latency_max,
                  self._newest)
        return sum(a.itemsize * len(a) for a in arrays)
