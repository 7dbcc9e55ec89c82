"""The inventory's `slos:` section: service level objectives, each an SLI (good events among
all events), an objective over a window, how its error budget is counted, and the burn-rate
alerts and deploy freeze that follow from it.

Vocabulary as OpenSLO v1 has it: a rolling window (the last 28 or 30 days) or a calendar one
(this month, this quarter, in a time zone); budgeting by occurrences (the share of good events)
or by time slices (the share of good slices, a slice being good when its own ratio reaches
`timeslice_target`). The platform guide's SLO table is the seed example (docs/slo.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from opsplane.alerts.models import Severity
from opsplane.config.types import Duration, Ratio, Strict, TimeZone

SloName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]

# The multi-window, multi-burn-rate alerts of the Google SRE workbook (chapter 5): a long
# window that says the burn is real and a short one (a twelfth of it) that says it still goes on.
# Burn rate 14.4 over an hour spends 2 % of a 30-day budget; 6 over six hours 5 %; 3 over a
# day 10 %; 1 over three days 10 %.
PAGE_WINDOWS: tuple[tuple[float, float, float], ...] = ((3600.0, 300.0, 14.4), (21600.0, 1800.0, 6.0))
TICKET_WINDOWS: tuple[tuple[float, float, float], ...] = ((86400.0, 7200.0, 3.0), (259200.0, 21600.0, 1.0))


class EventsSli(Strict):
    """Good (or bad) events among all events, from counters opsplane scrapes."""

    good: str | None = Field(
        None, description="PromQL selector of a counter of good events, e.g. "
        "http_requests_total{service=\"gateway\",status!~\"5..\"}; or give `bad`.")
    bad: str | None = Field(
        None, description="PromQL selector of a counter of bad events, e.g. "
        "http_requests_total{service=\"gateway\",status=~\"5..\"}; or give `good`.")
    total: str = Field(description="PromQL selector of a counter of all events, e.g. "
                       "http_requests_total{service=\"gateway\"}.")

    @model_validator(mode="after")
    def _good_or_bad(self) -> EventsSli:
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad, beside total")
        return self


class LatencySli(Strict):
    """Requests answered within `threshold` among all requests, from a Prometheus histogram:
    its `le` bucket at the threshold (which must be one of its boundaries) over its `_count`."""

    histogram: str = Field(
        description="The histogram's name with matchers, without _bucket, e.g. "
        "http_request_duration_seconds{service=\"gateway\"}.")
    threshold: Duration = Field(description="Requests this fast or faster are good, e.g. 150ms.")


class ChecksSli(Strict):
    """For a service without metrics: each result of its health checks is an event, good when OK."""

    component: str | None = Field(None, description="Whose checks; the SLO's service when unset.")


class Sli(Strict):
    events: EventsSli | None = None
    latency: LatencySli | None = None
    checks: ChecksSli | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Sli:
        given = [kind for kind in ("events", "latency", "checks") if getattr(self, kind) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of events, latency and checks (got {got})")
        return self

    @property
    def kind(self) -> str:
        return "events" if self.events else "latency" if self.latency else "checks"


class CalendarWindow(Strict):
    unit: Literal["month", "quarter"] = Field(description="The window starts on the first of each month "
                                              "or quarter, at midnight in `timezone`.")
    timezone: TimeZone = "UTC"


class BurnAlerts(Strict):
    """The burn-rate alerts generated from the SLO, through the usual rules, routes and incidents."""

    page: bool = Field(True, description="Page on a fast burn: 14.4x over 1h and 5m, 6x over 6h and 30m.")
    ticket: bool = Field(True, description="A ticket on a slow burn: 3x over 1d and 2h, 1x over 3d and 6h.")
    page_severity: Severity = Severity.P1
    ticket_severity: Severity = Severity.P3
    min_events: Annotated[int, Field(ge=0)] = Field(
        100, description="Events a burn alert's long window must hold before it may fire, so a handful "
        "of failures on a quiet night does not page. Time-sliced SLOs count slices instead.")
    runbook: str | None = Field(None, description="Runbook linked from the burn alerts.")


class Slo(Strict):
    service: str = Field(description="The inventory component the SLO is about.")
    description: str | None = None
    objective: Ratio = Field(description="The share of good events (or good slices) promised, e.g. 99.9%.")
    sli: Sli
    window: Duration | None = Field(
        None, description="A rolling window, e.g. 30d or 28d (30d when neither this nor calendar is set).")
    calendar: CalendarWindow | None = Field(None, description="A calendar window instead of a rolling one.")
    budgeting: Literal["occurrences", "timeslices"] = Field(
        "occurrences", description="occurrences: the budget is the share of bad events; timeslices: the "
        "share of bad slices of `timeslice` each.")
    timeslice: Duration = Field(60.0, description="The slice length with timeslices budgeting, in whole "
                                "minutes.")
    timeslice_target: Ratio | None = Field(
        None, description="With timeslices budgeting: a slice is good when its ratio reaches this "
        "(the objective when unset).")
    alerts: BurnAlerts = Field(default_factory=BurnAlerts)
    deploy_gate: bool = Field(
        True, description="A spent budget freezes this service's deploys (an --override with a reason "
        "goes through, recorded).")

    @model_validator(mode="after")
    def _window(self) -> Slo:
        if not 0 < self.objective < 1:
            raise ValueError("objective must be above 0% and below 100%: a 100% objective leaves no budget")
        if self.window is not None and self.calendar is not None:
            raise ValueError("give window (rolling) or calendar, not both")
        if self.window is not None and not 3600 <= self.window <= 400 * 86400:
            raise ValueError("window must be between 1h and 400d")
        if self.budgeting == "timeslices" and (self.timeslice < 60 or self.timeslice % 60):
            raise ValueError("timeslice must be a whole number of minutes")
        return self

    @property
    def rolling_seconds(self) -> float | None:
        """The rolling window's length; None for a calendar window."""
        if self.calendar is not None:
            return None
        return self.window if self.window is not None else 30 * 86400.0

    @property
    def slice_target(self) -> float:
        return self.timeslice_target if self.timeslice_target is not None else self.objective
