"""What the traffic generator measured: per-step latencies and outcomes, rolled up into a
`TrafficReport` for a live window or for the whole run."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STEPS = ("login", "browse", "product", "search", "cart", "add_item", "checkout")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class StepSummary:
    """One step's requests, failures and latency percentiles in milliseconds."""

    requests: int
    failed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of(cls, latencies: Sequence[float], failed: int) -> StepSummary:
        ordered = sorted(latencies)
        return cls(len(ordered), failed, *(round(percentile(ordered, q) * 1000, 2) for q in (50, 95, 99)))


@dataclass(frozen=True)
class TrafficReport:
    """Requests sent over `duration_s` (ending `elapsed_s` after the start of the run)."""

    duration_s: float
    elapsed_s: float
    requests: int
    failed: int
    checkouts_completed: int
    checkouts_declined: int
    checkouts_failed: int
    sessions_started: int
    sessions_dropped: int
    steps: dict[str, StepSummary] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def success_ratio(self) -> float:
        return (self.requests - self.failed) / self.requests if self.requests else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def checkouts_per_s(self) -> float:
        """Completed checkouts (payment approved) per second."""
        return self.checkouts_completed / self.duration_s if self.duration_s > 0 else 0.0

    def latency_ms(self, q: int) -> float:
        """The largest per-step percentile `q` (50, 95 or 99): the slowest step decides."""
        return max((getattr(s, f"p{q}_ms") for s in self.steps.values() if s.requests), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3), "requests": self.requests, "failed": self.failed,
            "success_ratio": round(self.success_ratio, 4), "requests_per_s": round(self.requests_per_s, 2),
            "checkouts": {"completed": self.checkouts_completed, "declined": self.checkouts_declined,
                          "failed": self.checkouts_failed, "completed_per_s": round(self.checkouts_per_s, 2)},
            "sessions": {"started": self.sessions_started, "dropped": self.sessions_dropped},
            "steps": {name: vars(summary) for name, summary in self.steps.items()},
            "errors": dict(self.errors),
        }

    def line(self) -> str:
        """One line for a live display."""
        return (f"{self.elapsed_s:7.1f}s  {self.requests_per_s:7.1f} req/s  ok {self.success_ratio:6.1%}  "
                f"p95 {self.latency_ms(95):7.1f} ms  checkouts {self.checkouts_per_s:6.1f}/s  "
                f"dropped {self.sessions_dropped}")

    def table(self) -> str:
        """The final report as aligned text."""
        lines = [
            f"requests {self.requests} in {self.duration_s:.1f} s ({self.requests_per_s:.1f}/s), "
            f"success {self.success_ratio:.2%}",
            f"checkouts completed {self.checkouts_completed} ({self.checkouts_per_s:.2f}/s), declined "
            f"{self.checkouts_declined}, failed {self.checkouts_failed}; sessions {self.sessions_started} "
            f"(dropped {self.sessions_dropped})",
            f"{'step':<10} {'requests':>9} {'failed':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}",
        ]
        for name, s in self.steps.items():
            lines.append(f"{name:<10} {s.requests:>9} {s.failed:>7} {s.p50_ms:>9.1f} {s.p95_ms:>9.1f} "
                         f"{s.p99_ms:>9.1f}")
        lines += [f"error {kind}: {count}" for kind, count in sorted(self.errors.items())]
        return "\n".join(lines)


class Recorder:
    """Collects results as they come; `report` rolls up everything since a given mark."""

    def __init__(self) -> None:
        # Compact arrays: a long run at a high rate keeps millions of latencies.
        self.latencies: dict[str, array[float]] = {name: array("d") for name in STEPS}
        self.failures: dict[str, int] = dict.fromkeys(STEPS, 0)
        self.errors: Counter[str] = Counter()
        self.checkouts: Counter[str] = Counter()
        self.sessions_started = 0
        self.sessions_dropped = 0

    def record(self, step: str, seconds: float, ok: bool, error: str | None = None) -> None:
        self.latencies[step].append(seconds)
        if not ok:
            self.failures[step] += 1
            self.errors[error or "unknown"] += 1

    def mark(self) -> dict[str, Any]:
        """A snapshot of counts, to report a window later with `report(since=...)`."""
        return {"latencies": {k: len(v) for k, v in self.latencies.items()}, "failures": dict(self.failures),
                "errors": Counter(self.errors), "checkouts": Counter(self.checkouts),
                "started": self.sessions_started, "dropped": self.sessions_dropped}

    def report(self, duration: float, elapsed: float, since: dict[str, Any] | None = None) -> TrafficReport:
        base = since or {"latencies": dict.fromkeys(STEPS, 0), "failures": dict.fromkeys(STEPS, 0),
                         "errors": Counter(), "checkouts": Counter(), "started": 0, "dropped": 0}
        steps = {name: StepSummary.of(self.latencies[name][base["latencies"][name]:],
                                      self.failures[name] - base["failures"][name]) for name in STEPS}
        checkouts = self.checkouts - base["checkouts"]
        return TrafficReport(
            duration_s=duration, elapsed_s=elapsed, requests=sum(s.requests for s in steps.values()),
            failed=sum(s.failed for s in steps.values()), checkouts_completed=checkouts["completed"],
            checkouts_declined=checkouts["declined"], checkouts_failed=checkouts["failed"],
            sessions_started=self.sessions_started - base["started"],
            sessions_dropped=self.sessions_dropped - base["dropped"],
            steps={name: s for name, s in steps.items() if s.requests},
            errors=dict(self.errors - base["errors"]),
        )
