"""The in-memory window of scraped samples that PromQL expressions and alert rules read.

Each series keeps its timestamps and values in two `array('d')` columns (8 bytes a sample,
no per-sample objects) and its label set interned: a label set is stored once however many
scrapes repeat it, and its (name, value) pairs are shared with every other series that
has them, so a series costs about 500 bytes besides its samples. Samples older than the
window (1 h unless configured) are dropped as new ones arrive; a series left with no
samples and no longer reported by its target is forgotten by `expire()`.

Scrapes arrive per target, as Prometheus ingests them:
- a series the target reported last time but not this time gets a stale marker (the NaN
  with bit pattern 0x7ff0000000000002) at the scrape's time, so expressions stop seeing it
  at once instead of 5 minutes later; `mark_target_gone()` does the same for every series
  of a target that is down or removed;
- a target may hold at most `series_limit` series: series it already had are always kept,
  new ones beyond the limit are refused and counted in the result, so the caller can report
  the target instead of letting one exporter fill the memory;
- samples must move forward in time per series; an older or repeated timestamp is refused
  and counted.

A store is not thread-safe: scrapes and queries run on one event loop (or one thread).
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from opsplane.clock import Clock, SystemClock
from opsplane.errors import UsageError
from opsplane.metrics.promql import STALE_NAN, Labels, Matcher, Sample, SampleColumns, is_stale

METRIC_NAME = "__name__"
DEFAULT_WINDOW = 3600.0
DEFAULT_SERIES_LIMIT = 10_000
# Dropping the oldest samples moves a start index; the arrays are only rewritten once the
# dead part is this large, so trimming costs O(1) amortised per sample.
_COMPACT_AT = 64
# select() answers kept between changes of the store; a rule cycle needs a few dozen.
_REMEMBERED_ANSWERS = 256
_NEVER = float("-inf")


class _Series:
    """One series: interned labels and time-ordered sample columns."""

    __slots__ = ("labels", "times", "values", "head", "stale_at")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.times = array("d")
        self.values = array("d")
        self.head = 0  # index of the oldest sample still inside the window
        # When the newest stale marker was written: a window of samples all after it holds
        # none, which spares queries looking for them.
        self.stale_at = _NEVER

    def append(self, t: float, value: float) -> bool:
        """Add a sample; False (and nothing added) when it is not newer than the last one."""
        if self.times and t <= self.times[-1]:
            return False
        self.times.append(t)
        self.values.append(value)
        return True

    def trim(self, cutoff: float) -> None:
        """Forget samples older than `cutoff`.

        The columns are lent to queries without copying (`SampleStore.select`), so they are
        only ever appended to: dropping the dead part makes new columns and leaves the old
        ones, unchanged, to whoever still reads them.
        """
        times = self.times
        if self.head < len(times) and times[self.head] < cutoff:
            self.head = bisect_left(times, cutoff, self.head)
        if self.head >= _COMPACT_AT and self.head * 2 >= len(times):
            self.times = times[self.head:]
            self.values = self.values[self.head:]
            self.head = 0

    def __len__(self) -> int:
        return len(self.times) - self.head


@dataclass(frozen=True)
class ScrapeIngest:
    """What one scrape did to the store, for the scraper's events and metrics."""

    target: str
    appended: int
    new_series: int
    refused_series: int
    out_of_order: int
    stale_marked: int

    @property
    def over_limit(self) -> bool:
        """True when the target reported more series than its limit allows."""
        return self.refused_series > 0


class SampleStore:
    """Series per target in a sliding time window; a `SeriesSource` for the PromQL engine.

    `window` is in seconds, `series_limit` applies to each target separately, and `clock`
    decides which samples have left the window (tests pass a `ManualClock`).
    """

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        series_limit: int = DEFAULT_SERIES_LIMIT,
        clock: Clock | None = None,
    ) -> None:
        if window <= 0:
            raise UsageError(f"the metrics window must be positive, got {window:g} s")
        if series_limit < 1:
            raise UsageError(f"the per-target series limit must be at least 1, got {series_limit}")
        self.window = window
        self.series_limit = series_limit
        self._clock = clock or SystemClock()
        self._series: dict[Labels, _Series] = {}
        self._by_name: dict[str, dict[Labels, _Series]] = {}
        self._active: dict[str, set[Labels]] = {}  # per target: series in its last scrape
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        # Answers of select() since the last change; any append or expiry bumps _version.
        self._version = 0
        self._answers: dict[tuple[tuple[Matcher, ...], float, float], list[tuple[Labels, SampleColumns]]] = {}
        self._answers_version = 0

    @property
    def series_count(self) -> int:
        """Series currently held, stale or not."""
        return len(self._series)

    @property
    def sample_count(self) -> int:
        """Samples currently held inside the window, stale markers included."""
        return sum(len(series) for series in self._series.values())

    def targets(self) -> list[str]:
        """Targets whose last scrape put at least one series here."""
        return sorted(target for target, active in self._active.items() if active)

    def append_scrape(self, target: str, at: float, samples: Iterable[tuple[Labels, float]]) -> ScrapeIngest:
        """Store one scrape of `target` taken at `at` (Unix seconds): `samples` are
        (labels, value) pairs, labels sorted and including `__name__`.

        Series the target reported last time and not now get a stale marker at `at`.
        A series seen twice in one scrape keeps its first value, as Prometheus does.
        """
        at = _whole_millisecond(at)
        self._version += 1
        previous = self._active.get(target, set())
        known = self._series
        reported: dict[Labels, float] = {}
        for labels, value in samples:
            found = known.get(labels)
            key = found.labels if found is not None else self._intern(labels)
            if key not in reported:
                reported[key] = value
        refused = 0
        if len(reported) > self.series_limit:
            reported, refused = self._within_limit(reported, previous)
        cutoff = self._cutoff()
        appended = out_of_order = new_series = 0
        for key, value in reported.items():
            series = known.get(key)
            if series is None:
                series = self._create(key)
                new_series += 1
            times = series.times
            if times:
                # Compared with the last sample kept in the arrays, even one already outside
                # the window, so that the arrays stay sorted for bisection.
                if at <= times[-1]:
                    out_of_order += 1
                    continue
                if series.head < len(times) and times[series.head] < cutoff:
                    series.trim(cutoff)  # may replace the columns
            series.times.append(at)
            series.values.append(value)
            appended += 1
        now_active = set(reported)
        stale = self._mark_stale(previous - now_active, at, cutoff)
        self._active[target] = now_active
        return ScrapeIngest(target, appended, new_series, refused, out_of_order, stale)

    def _within_limit(
        self, reported: dict[Labels, float], previous: set[Labels]
    ) -> tuple[dict[Labels, float], int]:
        """The reported series the target may keep, and how many new ones were refused:
        series it already had come first, new ones fill what room the limit leaves."""
        kept = {key: value for key, value in reported.items() if key in previous}
        room = max(self.series_limit - len(kept), 0)
        fresh = [key for key in reported if key not in previous]
        for key in fresh[:room]:
            kept[key] = reported[key]
        return kept, max(len(fresh) - room, 0)

    def mark_target_gone(self, target: str, at: float) -> int:
        """Write a stale marker at `at` on every series `target` last reported (it is down or
        no longer configured); returns how many series were marked."""
        at = _whole_millisecond(at)
        self._version += 1
        previous = self._active.pop(target, set())
        return self._mark_stale(previous, at, self._cutoff())

    def expire(self) -> int:
        """Drop samples that left the window, and series left empty that no target still
        reports; returns how many series were forgotten. Call it now and then."""
        self._version += 1
        cutoff = self._cutoff()
        reported = set().union(*self._active.values()) if self._active else set()
        forgotten = 0
        for key, series in list(self._series.items()):
            series.trim(cutoff)
            if len(series) == 0 and key not in reported:
                self._forget(key)
                forgotten += 1
        if forgotten:
            # Label values that churn (a pod name per deploy) must not pile up as pairs.
            self._pairs = {pair: pair for labels in self._series for pair in labels}
        return forgotten

    def select(
        self, matchers: Sequence[Matcher], start: float, end: float
    ) -> Iterator[tuple[Labels, Sequence[Sample]]]:
        """Every series matching all matchers, with its samples in [start, end] in time
        order, stale markers included; series without samples there are left out.

        The answer is remembered until the store changes: a cycle of alert rules asks for
        the same few selectors over the same window again and again. Callers must not
        modify the sample columns they get.
        """
        cutoff = self._cutoff()
        key = (tuple(matchers), max(start, cutoff), end)
        if self._answers_version != self._version:
            self._answers.clear()
            self._answers_version = self._version
        answer = self._answers.get(key)
        if answer is None:
            answer = list(self._select(matchers, max(start, cutoff), end))
            if len(self._answers) >= _REMEMBERED_ANSWERS:
                self._answers.clear()
            self._answers[key] = answer
        return iter(answer)

    def _select(
        self, matchers: Sequence[Matcher], lower: float, end: float
    ) -> Iterator[tuple[Labels, SampleColumns]]:
        candidates, remaining = self._candidates(matchers)
        # A matcher's verdict depends only on the label value, and values repeat across
        # series (one job, a few instances): each distinct value is matched once per select.
        verdicts: list[dict[str, bool]] = [{} for _ in remaining]
        for key, series in candidates:
            if remaining and not _matches(remaining, verdicts, key):
                continue
            times = series.times
            lo = bisect_left(times, lower, series.head)
            hi = len(times) if times and times[-1] <= end else bisect_right(times, end, lo)
            if lo < hi:
                # The series' own columns, lent, not copied: a store only appends to them.
                yield key, SampleColumns(times, series.values, lo, hi, stale=series.stale_at >= times[lo])

    def _candidates(
        self, matchers: Sequence[Matcher]
    ) -> tuple[list[tuple[Labels, _Series]], list[Matcher]]:
        """The series worth matching, and the matchers still to check on them."""
        # Nearly every selector names its metric; looking it up avoids scanning the store.
        for matcher in matchers:
            if matcher.name == METRIC_NAME and matcher.op == "=":
                rest = [m for m in matchers if m is not matcher]
                return list(self._by_name.get(matcher.value, {}).items()), rest
        return list(self._series.items()), list(matchers)

    def _mark_stale(self, keys: Iterable[Labels], at: float, cutoff: float) -> int:
        marked = 0
        for key in keys:
            series = self._series.get(key)
            if series is None or len(series) == 0 or is_stale(series.values[-1]):
                continue
            series.trim(cutoff)
            if series.append(at, STALE_NAN):
                series.stale_at = at
                marked += 1
        return marked

    def _create(self, key: Labels) -> _Series:
        series = _Series(key)
        self._series[key] = series
        self._by_name.setdefault(_metric_name(key), {})[key] = series
        return series

    def _forget(self, key: Labels) -> None:
        del self._series[key]
        name = _metric_name(key)
        same_name = self._by_name.get(name)
        if same_name is not None:
            same_name.pop(key, None)
            if not same_name:
                del self._by_name[name]

    def _intern(self, labels: Labels) -> Labels:
        """The one stored copy of this label set, built from shared (name, value) pairs.

        The series table doubles as the table of label sets. Pairs are shared too: a
        target's `job` and `instance`, and a metric's name, repeat in every series, so most
        series add only their outer tuple.
        """
        series = self._series.get(labels)
        if series is not None:
            return series.labels
        canonical = tuple(sorted(self._pair(name, value) for name, value in labels))
        series = self._series.get(canonical)
        return series.labels if series is not None else canonical

    def _pair(self, name: str, value: str) -> tuple[str, str]:
        found = self._pairs.get((name, value))
        if found is None:
            found = (sys.intern(name), sys.intern(value))
            self._pairs[found] = found
        return found

    def _cutoff(self) -> float:
        return self._clock.now().timestamp() - self.window


def _metric_name(labels: Labels) -> str:
    for name, value in labels:
        if name == METRIC_NAME:
            return value
    return ""


def _matches(matchers: Sequence[Matcher], verdicts: list[dict[str, bool]], labels: Labels) -> bool:
    for matcher, seen in zip(matchers, verdicts, strict=True):
        value = ""
        for name, label_value in labels:
            if name == matcher.name:
                value = label_value
                break
        verdict = seen.get(value)
        if verdict is None:
            verdict = seen[value] = matcher.matches(value)
        if not verdict:
            return False
    return True


def _whole_millisecond(at: float) -> float:
    """`at` cut to the millisecond, as Prometheus keeps sample times. An evaluation rounds its
    own time to the millisecond, so a sample kept finer could lie up to half a millisecond in
    the future of a rule cycle that starts right after it was stored, and go unseen."""
    return math.floor(at * 1000.0) / 1000.0
