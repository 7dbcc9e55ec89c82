"""What one SLO counted lately, in memory: the minutes of the last three days and the hours of
its window, so that each minute's burn rates and budget are sums of a few hundred numbers
rather than a read of 30 days from the store.

Minutes and hours live in rings of flat arrays (a slot per minute, a slot per hour, tagged with
the minute or hour it holds), about 100 KB a SLO for minutes and 30 KB for a 30-day window's
hours. An hour's slot is the sum of the minutes recorded in it, the current hour's too. A span
is summed from whole hours where it covers them and from minutes at its edges; at an edge older
than the minutes kept, the hour counts whole when the span holds most of it, else not at all.

A time slice is judged when its last minute is recorded: one whose last minute `serve` missed
is left unjudged, as a slice without events is (good).

Pure: it is given minutes and rows, and asked for counts; the worker records and the store keeps.
"""

from __future__ import annotations

import math
from array import array

from opsplane.slo.budget import Counts, slice_is_good
from opsplane.slo.models import Slo

MINUTES = 3 * 1440  # the longest burn-rate window, 3 days


class Ledger:
    """The recent counts of one SLO."""

    def __init__(self, slo: Slo, *, minutes: int = MINUTES, hours: int | None = None) -> None:
        self.slo = slo
        self.size = minutes
        self.hour_size = hours if hours is not None else hours_needed(slo)
        self._minute = array("q", [-1]) * self.size  # which minute each slot holds (-1: none)
        self._good = array("d", [0.0]) * self.size
        self._total = array("d", [0.0]) * self.size
        self._ended = array("b", [0]) * self.size  # a slice ended: 0 none or without events, 1 good, 2 bad
        self._hour = array("q", [-1]) * self.hour_size
        # per hour slot: good, total, slices, bad slices
        self._hours = array("d", [0.0]) * (4 * self.hour_size)
        self.newest = -1  # the newest minute recorded

    # --- writing ------------------------------------------------------------------------

    def add(self, minute: int, good: float, total: float) -> tuple[int, int] | None:
        """Record minute number `minute` (Unix seconds // 60); returns the time slices that
        ended with it (those with events, the bad ones among them), None when the minute was
        already recorded."""
        if self.has(minute):
            return None
        good = min(max(good, 0.0), total)
        self._put_minute(minute, good, total, 0, 0)
        slices = bad = 0
        width = int(self.slo.timeslice // 60)
        if (minute + 1) % width == 0:
            g, t = self._sum_minutes(minute + 1 - width, minute + 1)
            if t > 0:
                slices = 1
                bad = 0 if slice_is_good(g, t, self.slo.slice_target) else 1
                self._ended[minute % self.size] = 1 + bad
        self._add_hour(minute // 60, good, total, slices, bad)
        return slices, bad

    def load_minute(self, minute: int, good: float, total: float, slices: int = 0, bad_slices: int = 0
                    ) -> None:
        """A minute read back from the store (its hour comes with `load_hour`)."""
        self._put_minute(minute, good, total, slices, bad_slices)

    def load_hour(self, hour: int, good: float, total: float, slices: int, bad_slices: int) -> None:
        slot = hour % self.hour_size
        self._hour[slot] = hour
        self._hours[4 * slot:4 * slot + 4] = array("d", (good, total, float(slices), float(bad_slices)))

    # --- reading ------------------------------------------------------------------------

    def has(self, minute: int) -> bool:
        return self._minute[minute % self.size] == minute

    def counts(self, start: float, end: float) -> Counts:
        """The counts of the minutes starting in [start, end) (Unix seconds)."""
        first, last = math.ceil(start / 60), math.ceil(end / 60)  # minutes [first, last)
        oldest = self.newest - self.size + 1
        good = total = 0.0
        slices = bad = 0
        m = first
        while m < last:
            if m % 60 == 0 and (m + 60 <= last or last > self.newest):
                hour = self._hour_counts(m // 60)
                if hour is not None:
                    good += hour[0]
                    total += hour[1]
                    slices += int(hour[2])
                    bad += int(hour[3])
                m += 60
            elif m < oldest:  # the minutes are gone: the hour counts whole if the span holds most of it
                hour = self._hour_counts(m // 60) if m % 60 <= 30 else None
                if hour is not None:
                    good += hour[0]
                    total += hour[1]
                    slices += int(hour[2])
                    bad += int(hour[3])
                m = (m // 60 + 1) * 60
            else:
                slot = m % self.size
                if self._minute[slot] == m:
                    good += self._good[slot]
                    total += self._total[slot]
                    ended = self._ended[slot]
                    slices += ended > 0
                    bad += ended == 2
                m += 1
        if self.slo.budgeting == "timeslices":
            slices, bad = self._edge_slices(first, last, slices, bad)
        return Counts(good, total, slices, bad)

    def memory_bytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self._minute, self._good, self._total, self._ended,
                                                  self._hour, self._hours))

    # --- inside -------------------------------------------------------------------------

    def _put_minute(self, minute: int, good: float, total: float, slices: int, bad: int) -> None:
        slot = minute % self.size
        self._minute[slot] = minute
        self._good[slot] = good
        self._total[slot] = total
        self._ended[slot] = 2 if bad else 1 if slices else 0
        self.newest = max(self.newest, minute)

    def _add_hour(self, hour: int, good: float, total: float, slices: int, bad: int) -> None:
        slot = hour % self.hour_size
        if self._hour[slot] != hour:
            self._hour[slot] = hour
            self._hours[4 * slot:4 * slot + 4] = array("d", (0.0, 0.0, 0.0, 0.0))
        base = 4 * slot
        self._hours[base] += good
        self._hours[base + 1] += total
        self._hours[base + 2] += slices
        self._hours[base + 3] += bad

    def _hour_counts(self, hour: int) -> tuple[float, float, float, float] | None:
        slot = hour % self.hour_size
        if self._hour[slot] != hour:
            return None
        base = 4 * slot
        return self._hours[base], self._hours[base + 1], self._hours[base + 2], self._hours[base + 3]

    def _sum_minutes(self, first: int, last: int) -> tuple[float, float]:
        good = total = 0.0
        for m in range(first, last):
            slot = m % self.size
            if self._minute[slot] == m:
                good += self._good[slot]
                total += self._total[slot]
        return good, total

    def _edge_slices(self, first: int, last: int, slices: int, bad: int) -> tuple[int, int]:
        """Slices are counted in the minute they end; one that ended in the span but began
        before it is not wholly inside: take it out (when its minutes are still known)."""
        width = int(self.slo.timeslice // 60)
        if width == 1 or first % width == 0:
            return slices, bad
        ends = (first // width + 1) * width - 1  # the minute that ends the slice cut by `first`
        if ends >= last or not self.has(ends):
            return slices, bad
        ended = self._ended[ends % self.size]
        return max(0, slices - (ended > 0)), max(0, bad - (ended == 2))


def hours_needed(slo: Slo) -> int:
    """Hour slots for the SLO's window (a quarter at most 92 days) and the 3-day burn window."""
    window = slo.rolling_seconds if slo.rolling_seconds is not None else (
        31 * 86400.0 if slo.calendar is not None and slo.calendar.unit == "month" else 92 * 86400.0)
    return int(max(window, 3 * 86400.0) // 3600) + 2
