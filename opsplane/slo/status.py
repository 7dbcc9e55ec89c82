"""Where an SLO stands now: its SLI, budget left, burn rates by window and a verdict with its
reason, from its counts (a `Ledger`, or anything that sums counts over a span) and `now`.

The verdict: `exhausted` once the budget is spent (nothing left, or less); `warning` while a
burn alert's thresholds are passed in both its windows or less than a quarter of the budget is
left; `unknown` when the SLI cannot be read or nothing happened in the window; else `ok`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from opsplane.slo import budget
from opsplane.slo.budget import BudgetWindow, Counts
from opsplane.slo.models import PAGE_WINDOWS, TICKET_WINDOWS, Slo

BURN_WINDOWS: tuple[tuple[str, float], ...] = (
    ("5m", 300.0), ("30m", 1800.0), ("1h", 3600.0), ("2h", 7200.0), ("6h", 21600.0), ("1d", 86400.0),
    ("3d", 259200.0))
"""The windows whose burn rates are published: both windows of every page and ticket alert."""
LOW_BUDGET = 0.25  # less than this share left is a warning
SPENT = 1e-9  # a budget spent exactly is spent, whatever the last bit of its floating-point sum says
State = Literal["ok", "warning", "exhausted", "unknown"]
CountsOver = Callable[[float, float], Counts]
"""The counts of the minutes starting in [start, end), Unix seconds."""


def window_name(seconds: float) -> str:
    return next(name for name, length in BURN_WINDOWS if length == seconds)


@dataclass(frozen=True)
class SloStatus:
    """One SLO now."""

    name: str
    service: str
    objective: float
    kind: str  # events, latency or checks
    budgeting: str
    window: BudgetWindow
    counts: Counts
    sli: float | None
    consumed: float | None
    remaining: float | None
    burn_rates: dict[str, float]
    events: dict[str, float]  # events (or slices with events) per burn window
    state: State
    reason: str
    burning: list[str] = field(default_factory=list)  # the burn alerts whose thresholds are passed
    deploy_gate: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "service": self.service, "objective": self.objective, "sli_kind": self.kind,
            "budgeting": self.budgeting, "window_start": self.window.start.isoformat(),
            "window_seconds": self.window.length, "sli": self.sli, "budget_consumed": self.consumed,
            "budget_remaining": self.remaining, "events": self.counts.total, "good": self.counts.good,
            "slices": self.counts.slices, "bad_slices": self.counts.bad_slices,
            "burn_rates": self.burn_rates, "window_events": self.events, "state": self.state,
            "reason": self.reason, "burning": self.burning, "deploy_gate": self.deploy_gate,
        }


def judge(name: str, slo: Slo, counts_over: CountsOver, now: datetime, *, problem: str | None = None
          ) -> SloStatus:
    """The status of `slo` at `now`; `problem` (why its SLI cannot be read) makes it unknown."""
    window = budget.budget_window(slo, now)
    end = now.timestamp()
    counts = counts_over(window.start.timestamp(), end)
    rates: dict[str, float] = {}
    seen: dict[str, float] = {}
    for label, seconds in BURN_WINDOWS:
        got = counts_over(end - seconds, end)
        rates[label] = budget.burn_rate(slo, got, seconds)
        seen[label] = budget.events(slo, got)
    sli = budget.sli(slo, counts, window)
    consumed = budget.budget_consumed(slo, counts, window)
    remaining = None if consumed is None else 1.0 - consumed
    burning = burning_alerts(slo, rates, seen)
    state, reason = verdict(slo, remaining, consumed, burning, problem)
    return SloStatus(name, slo.service, slo.objective, slo.sli.kind, slo.budgeting, window, counts, sli,
                     consumed, remaining, rates, seen, state, reason, burning, slo.deploy_gate)


def burning_alerts(slo: Slo, rates: dict[str, float], seen: dict[str, float]) -> list[str]:
    """The burn alerts (page, ticket) whose long and short windows are both over their factor,
    with enough events in the long one, as the generated rules judge them."""
    found = []
    for kind, pairs, wanted in (("page", PAGE_WINDOWS, slo.alerts.page),
                                ("ticket", TICKET_WINDOWS, slo.alerts.ticket)):
        if not wanted:
            continue
        for long, short, factor in pairs:
            ln, sn = window_name(long), window_name(short)
            if rates[ln] > factor and rates[sn] > factor and seen[ln] >= slo.alerts.min_events:
                found.append(f"{kind}: burn rate {rates[ln]:.1f} over {ln} and {rates[sn]:.1f} over {sn} "
                             f"(above {factor:g})")
                break
    return found


def verdict(slo: Slo, remaining: float | None, consumed: float | None, burning: list[str],
            problem: str | None) -> tuple[State, str]:
    if problem is not None:
        return "unknown", problem
    if remaining is None or consumed is None:
        return "unknown", "no events in the window yet"
    if remaining <= SPENT:
        over = f", {-remaining:.0%} over" if remaining < 0 else ""
        return "exhausted", f"error budget spent: {consumed:.0%} of it used{over}"
    if burning:
        return "warning", "burning fast: " + "; ".join(burning)
    if remaining < LOW_BUDGET:
        return "warning", f"only {remaining:.0%} of the error budget left"
    return "ok", f"{remaining:.0%} of the error budget left"
