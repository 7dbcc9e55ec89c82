"""The last day of every check's results, downsampled into time buckets at four resolutions.

`opsplane serve` may watch ten thousand checks under a tight memory budget, and the dashboard
draws a chart per check and per component over a range the reader picks (15 minutes to a day),
so results are not kept one by one. Each check owns one ring of buckets per *tier*: 60 buckets
of 15 s (the last 15 minutes), of 1 min (the last hour), of 6 min (6 hours) and of 24 min (a
day). A result is counted in the current bucket of every tier.

A bucket that is over is packed into two bytes: the mean duration of its runs on a logarithmic
scale (12 bits: steps of 0.45 % from 10 µs to 1,000 s, finer than a chart can show) and the
share of its runs that were not OK (4 bits, in fifteenths rounded up, so one failure is never
lost). Only each tier's current bucket is kept exactly (runs, failures, sum of durations) until
it is packed. The rings of all checks live side by side in a few flat `array`s: 512 bytes per
check, about 5 MB for 10,000 checks, whatever their interval.

Time comes from an injected clock: buckets are numbered on its monotonic seconds (a wall clock
that is set back must not scramble them), and wall times are derived for display only.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsplane.clock import Clock, SystemClock
from opsplane.health.models import ProbeResult, State

BUCKETS = 60  # per tier: as many points as a chart draws
TIERS = (15.0, 60.0, 360.0, 1440.0)  # seconds per bucket; each a multiple of the one before
_COUNT_LIMIT = 0xFF  # the current bucket's counts are single bytes: they saturate
_LEVELS = 15  # failure share in fifteenths: 4 bits
_CODES = 4095  # mean latency codes 1..4095 in 12 bits; 0 means no run
_LOW, _HIGH = 1e-5, 1e3  # seconds covered by the codes; beyond them a value is clamped
_SCALE = (_CODES - 1) / math.log(_HIGH / _LOW)


def pack(mean: float, count: int, failures: int) -> int:
    """A finished bucket in 16 bits: its mean latency's code and its failure share's level."""
    code = 1 + round(math.log(min(max(mean, _LOW), _HIGH) / _LOW) * _SCALE)
    level = math.ceil(_LEVELS * failures / count) if count else 0
    return code << 4 | level


def unpack(packed: int) -> tuple[float | None, float]:
    """(mean latency in seconds or None for an empty bucket, share of runs not OK)."""
    code = packed >> 4
    if not code:
        return None, 0.0
    return _LOW * math.exp((code - 1) / _SCALE), (packed & 0xF) / _LEVELS


@dataclass(frozen=True)
class Bucket:
    """One time bucket: the mean duration of the runs that ended in it (None when none did)
    and the share of them that were not OK (exact for the current bucket, in fifteenths for
    older ones)."""

    start: datetime
    mean_latency: float | None
    failed: float

    @property
    def has_runs(self) -> bool:
        return self.mean_latency is not None


@dataclass(frozen=True)
class Series:
    """Consecutive buckets of one tier, oldest first, ending with the bucket that holds `now`."""

    width: float
    buckets: tuple[Bucket, ...]

    def mean_latencies(self) -> list[float | None]:
        return [b.mean_latency for b in self.buckets]

    @property
    def failing_buckets(self) -> int:
        """How many buckets had at least one run that was not OK."""
        return sum(1 for b in self.buckets if b.failed > 0)


class ProbeHistory:
    """Per-check rings of result buckets at the resolutions of `tiers`, `size` buckets each.

    `record` is on the scheduler's hot path: a dictionary lookup and a few array writes per
    tier. Checks not named at construction are ignored (the inventory is fixed while serving).
    """

    def __init__(
        self,
        check_ids: Iterable[str],
        *,
        tiers: Sequence[float] = TIERS,
        size: int = BUCKETS,
        clock: Clock | None = None,
    ) -> None:
        widths = [float(w) for w in tiers]
        if not widths or widths[0] <= 0 or size < 1 or any(
                b % a or b <= a for a, b in zip(widths, widths[1:], strict=False)):
            raise ValueError(f"history needs increasing bucket widths, each a multiple of the one "
                             f"before, and at least one bucket; got {tiers} and {size}")
        self.tiers = tuple(widths)
        self.size = size
        self.clock = clock or SystemClock()
        self._ratio = [int(w // widths[0]) for w in widths]  # finest buckets per bucket
        self._index = {check_id: i for i, check_id in enumerate(dict.fromkeys(check_ids))}
        checks, count = len(self._index), len(widths)
        self._rings = array("H", [0]) * (checks * count * size)
        # The current bucket of each tier of each check, exact until it is packed.
        self._runs = array("B", [0]) * (checks * count)
        self._failures = array("B", [0]) * (checks * count)
        self._sum = array("f", [0.0]) * (checks * count)
        # The newest finest-tier bucket each check has written (-1: none). The other tiers'
        # newest buckets follow from it, since every width is a multiple of the finest.
        self._newest = array("q", [-1]) * checks

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._index

    def record(self, check_id: str, result: ProbeResult) -> None:
        """Count `result` in the current buckets of `check_id`."""
        self.add(check_id, result.state, result.duration)

    def add(self, check_id: str, state: State, duration: float) -> None:
        """Count one run ending now with `state` after `duration` seconds."""
        index = self._index.get(check_id)
        if index is None:
            return
        number = int(self.clock.monotonic() // self.tiers[0])
        newest = self._newest[index]
        if number != newest:
            if number < newest:  # a result from before the newest bucket: nowhere to put it
                return
            for tier, ratio in enumerate(self._ratio):
                if newest < 0:
                    self._close(index, tier, None, number // ratio)
                elif number // ratio > newest // ratio:
                    self._close(index, tier, newest // ratio, number // ratio)
            self._newest[index] = number
        runs, sums, failures = self._runs, self._sum, self._failures
        failed = state is not State.OK
        first = index * len(self.tiers)
        for slot in range(first, first + len(self.tiers)):
            if runs[slot] < _COUNT_LIMIT:
                runs[slot] += 1
                sums[slot] += duration
                if failed:
                    failures[slot] += 1

    def _close(self, index: int, tier: int, before: int | None, now: int) -> None:
        """Pack the finished current bucket `before` of one tier into its ring, clear the
        buckets skipped up to `now` (they hold data one lap old) and start `now` empty."""
        slot = index * len(self.tiers) + tier
        ring = slot * self.size
        if before is not None and self._runs[slot]:
            runs = self._runs[slot]
            self._rings[ring + before % self.size] = pack(self._sum[slot] / runs, runs,
                                                          self._failures[slot])
        start = now - self.size + 1 if before is None else max(before + 1, now - self.size + 1)
        for number in range(start, now + 1):
            self._rings[ring + number % self.size] = 0
        self._runs[slot] = self._failures[slot] = 0
        self._sum[slot] = 0.0

    def series(self, check_ids: Sequence[str], *, tier: int = 1) -> Series:
        """The buckets of `check_ids` at the resolution of `tiers[tier]`, merged: each bucket's
        latency is the mean of the checks' means that have runs in it, its failure share the
        mean of their shares. One check, or all checks of a component."""
        width, ratio = self.tiers[tier], self._ratio[tier]
        mono, wall = self.clock.monotonic(), self.clock.now()
        current = int(mono // width)
        indexes = [self._index[c] for c in check_ids if c in self._index]
        buckets = []
        for number in range(current - self.size + 1, current + 1):
            start = wall - timedelta(seconds=mono - number * width)
            latencies, shares = [], []
            for index in indexes:
                found = self._bucket(index, tier, ratio, number)
                if found is not None:
                    latencies.append(found[0])
                    shares.append(found[1])
            buckets.append(Bucket(start, sum(latencies) / len(latencies), sum(shares) / len(shares))
                           if latencies else Bucket(start, None, 0.0))
        return Series(width, tuple(buckets))

    def _bucket(self, index: int, tier: int, ratio: int, number: int) -> tuple[float, float] | None:
        newest = self._newest[index] // ratio if self._newest[index] >= 0 else -1
        if number > newest or number <= newest - self.size:
            return None  # not written yet in this lap, or already overwritten
        slot = index * len(self.tiers) + tier
        if number == newest:
            runs = self._runs[slot]
            return (self._sum[slot] / runs, self._failures[slot] / runs) if runs else None
        mean, failed = unpack(self._rings[slot * self.size + number % self.size])
        return None if mean is None else (mean, failed)

    def memory_bytes(self) -> int:
        """Bytes held by the rings and current buckets: what the history costs `serve`."""
        arrays = (self._rings, self._runs, self._failures, self._sum, self._newest)
        return sum(a.itemsize * len(a) for a in arrays)
