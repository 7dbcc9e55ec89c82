"""What the dashboard's SLO pages show, read from the store through the SLO domain.

Where an SLO stands (SLI, budget left, burn rates, state and reason) is `slo.status.SloStatus`:
the one `serve`'s SLO worker found at its last minute when it runs in this process, else worked
out from the store's minutes and hours as `opsplane slo status` does. The burn-down and the SLI
per day come from the store's hour rows (`slo.burndown`); the burn alerts firing now from the
alert states; the monthly review from `slo.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.slo import burndown, service
from opsplane.slo.budget import Counts
from opsplane.slo.models import PAGE_WINDOWS, TICKET_WINDOWS, Slo
from opsplane.slo.report import SloMonth, month_report
from opsplane.slo.status import SloStatus, window_name
from opsplane.timefmt import span_words
from opsplane.units import Unit, format_value
from opsplane.web.charts import sparkline
from opsplane.web.linechart import Line, Threshold, time_chart
from opsplane.web.pages import EventRow, event_rows

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

SPARK_POINTS = 60
EVENT_LIMIT = 20
# A state's badge and row mark; its name is always written beside the colour.
STATE_CLASSES = {"ok": "state-ok", "warning": "state-warning", "exhausted": "state-critical",
                 "unknown": "state-unknown"}


def pct(value: float | None, digits: int = 3) -> str:
    """'99.95%', '-20%', '—' for nothing: as many decimals as `digits`, trailing zeros dropped."""
    if value is None:
        return "—"
    text = f"{value * 100:.{digits}f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


def window_words(slo: Slo) -> str:
    """'30 days, rolling' or 'calendar month (Europe/Paris)'."""
    if slo.calendar is not None:
        return f"calendar {slo.calendar.unit} ({slo.calendar.timezone})"
    return f"{span_words(slo.rolling_seconds or 0.0)}, rolling"


@dataclass(frozen=True)
class SloLine:
    """One SLO as the list and the service page show it."""

    slo: Slo
    status: SloStatus
    bar: Markup  # the budget left as a bar
    spark: Markup | None  # the budget left over the window, when the list draws it

    @property
    def name(self) -> str:
        return self.status.name

    @property
    def state_class(self) -> str:
        return STATE_CLASSES[self.status.state]

    @property
    def window(self) -> str:
        return window_words(self.slo)

    @property
    def remaining_text(self) -> str:
        return pct(self.status.remaining, 1)

    @property
    def objective_text(self) -> str:
        return pct(self.status.objective)

    def burn(self, window: str) -> str:
        return f"{self.status.burn_rates.get(window, 0.0):.2f}"


@dataclass(frozen=True)
class BurnPair:
    """One pair of windows of a burn alert against its factor, as the rules judge it."""

    alert: str  # page or ticket
    long: str
    short: str
    factor: float
    long_rate: float
    short_rate: float
    events: float  # in the long window
    min_events: int
    enabled: bool
    bar: Markup

    @property
    def over(self) -> bool:
        return (self.long_rate > self.factor and self.short_rate > self.factor
                and self.events >= self.min_events)


@dataclass(frozen=True)
class BurnAlert:
    """A burn alert of the SLO, pending or firing now, as the alert states hold it."""

    name: str
    state: str
    severity: str
    since: datetime
    value: float | None  # the budget left when last evaluated
    summary: str


@dataclass(frozen=True)
class SloPage:
    """Everything one SLO's page shows."""

    line: SloLine
    definition: list[tuple[str, str]]
    burndown: Markup
    burndown_summary: str
    days: Markup
    days_summary: str
    pairs: list[BurnPair]
    alerts: list[BurnAlert]
    gate_held: bool
    gate: str
    month: str
    review: SloMonth | None
    events: list[EventRow]


# --- reading ----------------------------------------------------------------------------------


def current_statuses(session: Session, slos: Mapping[str, Slo], *, now: datetime,
                     kept: Mapping[str, SloStatus] | None) -> dict[str, SloStatus]:
    """Each SLO's status: the worker's (`kept`) when it judged them all, else from the store."""
    if kept is not None and all(name in kept for name in slos):
        return {name: kept[name] for name in slos}
    return {status.name: status for status in service.statuses(session, slos, now=now)}


def hour_counts(session: Session, slo: Slo, name: str, now: datetime) -> dict[int, Counts]:
    """The SLO's hours the burn-down reads, by hour number."""
    rows = service.hours(session, name=name, start=burndown.hours_needed_since(slo, now), end=now)
    return {int(row.at.timestamp()) // 3600: Counts(row.good, row.total, row.slices, row.bad_slices)
            for row in rows}


def slo_lines(session: Session, slos: Mapping[str, Slo], *, now: datetime,
              kept: Mapping[str, SloStatus] | None = None, sparks: bool = True) -> list[SloLine]:
    """Every SLO of `slos` with its status and budget bar (and its budget-left sparkline)."""
    statuses = current_statuses(session, slos, now=now, kept=kept)
    found = []
    for name, slo in slos.items():
        status = statuses[name]
        spark = None
        if sparks:
            down = burndown.burn_down(slo, hour_counts(session, slo, name, now), now, last=status.remaining)
            spark = budget_spark(down, name)
        found.append(SloLine(slo, status, budget_bar(status), spark))
    return found


def slo_page(session: Session, inv: Inventory, name: str, *, now: datetime,
             kept: Mapping[str, SloStatus] | None = None, month: tuple[int, int]) -> SloPage | None:
    """The page of SLO `name`, with the review of `month` (year, month); None when the
    inventory has no such SLO."""
    slo = inv.slos.get(name)
    if slo is None:
        return None
    status = current_statuses(session, {name: slo}, now=now, kept=kept)[name]
    hours = hour_counts(session, slo, name, now)
    down = burndown.burn_down(slo, hours, now, last=status.remaining)
    first = min(hours, default=None)
    burn_svg, burn_words = burndown_chart(name, down, None if first is None else first * 3600.0)
    day_svg, day_words = days_chart(slo, name, burndown.days(slo, hours, status.window.start, now), now)
    held, gate = gate_words(slo, status)
    [review] = month_report(session, {name: slo}, year=month[0], month=month[1])
    return SloPage(
        line=SloLine(slo, status, budget_bar(status), None), definition=definition(slo),
        burndown=burn_svg, burndown_summary=burn_words, days=day_svg, days_summary=day_words,
        pairs=burn_pairs(slo, status), alerts=burn_alerts(session, name), gate_held=held, gate=gate,
        month=f"{month[0]:04d}-{month[1]:02d}", review=review, events=slo_events(session, name))


def burn_alerts(session: Session, name: str) -> list[BurnAlert]:
    """The SLO's alerts pending or firing now, firing first."""
    from opsplane.alerts import service as alerts
    from opsplane.alerts.state import AlertState

    found = [BurnAlert(a.name, a.state.value, a.labels.get("severity", ""),
                       a.fired_at or a.active_at, a.value, a.annotations.get("summary", ""))
             for a in alerts.get_all(session)
             if a.labels.get("slo") == name and a.state in (AlertState.FIRING, AlertState.PENDING)]
    return sorted(found, key=lambda a: (a.state != "firing", a.name))


def slo_events(session: Session, name: str) -> list[EventRow]:
    """The SLO's budget events (spent, restored), newest first."""
    from opsplane.events.tables import Event

    rows = session.scalars(select(Event).where(Event.target == name, Event.kind.startswith("slo."))
                           .order_by(Event.id.desc()).limit(EVENT_LIMIT)).all()
    return event_rows(rows)


# --- words ------------------------------------------------------------------------------------


def definition(slo: Slo) -> list[tuple[str, str]]:
    """The SLO's definition as (term, text) lines."""
    sli = slo.sli
    lines: list[tuple[str, str]] = [("Service", slo.service), ("Objective", pct(slo.objective))]
    if slo.description:
        lines.append(("Description", slo.description))
    if sli.events is not None:
        lines.append(("SLI", "events: good events among all events"))
        if sli.events.good is not None:
            lines.append(("Good", sli.events.good))
        if sli.events.bad is not None:
            lines.append(("Bad", sli.events.bad))
        lines.append(("Total", sli.events.total))
    elif sli.latency is not None:
        lines.append(("SLI", f"latency: requests answered within "
                             f"{format_value(sli.latency.threshold, Unit.SECONDS)} among all requests"))
        lines.append(("Histogram", sli.latency.histogram))
    else:
        component = (sli.checks.component if sli.checks is not None else None) or slo.service
        lines.append(("SLI", f"checks: results of {component}'s health checks that were OK"))
    lines.append(("Window", window_words(slo)))
    share = 1.0 - slo.objective
    if slo.budgeting == "timeslices":
        lines.append(("Budgeting", f"time slices of {span_words(slo.timeslice)}; a slice is good when at "
                                   f"least {pct(slo.slice_target)} of its events are"))
        spent = "of the window's slices"
    else:
        lines.append(("Budgeting", "occurrences: every bad event spends budget"))
        spent = "of the events"
    rolling = slo.rolling_seconds
    as_time = f" (as time: {span_words(share * rolling)} in {span_words(rolling)})" if rolling else ""
    lines.append(("Error budget", f"{pct(share)} {spent}{as_time}"))
    alerts = slo.alerts
    kinds = [f"page ({alerts.page_severity.value})" if alerts.page else "",
             f"ticket ({alerts.ticket_severity.value})" if alerts.ticket else ""]
    said = " and ".join(k for k in kinds if k) or "none"
    lines.append(("Burn alerts", f"{said}, once the long window holds {alerts.min_events} "
                                 f"{'slices' if slo.budgeting == 'timeslices' else 'events'}"
                                 + (f"; runbook {alerts.runbook}" if alerts.runbook else "")))
    lines.append(("Deploy gate", "a spent budget holds the service's deploys" if slo.deploy_gate
                  else "off: this SLO never holds deploys"))
    return lines


def gate_words(slo: Slo, status: SloStatus) -> tuple[bool, str]:
    """Whether the SLO holds its service's deploys now, and a sentence saying so."""
    if not slo.deploy_gate:
        return False, f"This SLO does not hold deploys of {slo.service} (deploy_gate: false)."
    if status.state == "exhausted" and status.consumed is not None:
        return True, (f"Deploys of {slo.service} are held: the error budget is spent ({status.consumed:.0%} "
                      f"of it used). A deploy goes through only with --override --reason TEXT "
                      f"(operator role, recorded); rollbacks are never held.")
    if status.remaining is None:
        return False, f"Deploys of {slo.service} go ahead: nothing to judge in the window yet."
    return False, (f"Deploys of {slo.service} go ahead: {status.remaining:.0%} of the error budget is "
                   f"left. They are held once it is spent.")


def burn_pairs(slo: Slo, status: SloStatus) -> list[BurnPair]:
    """Each burn alert's pairs of windows, long window first, with their rates now."""
    pairs = []
    top = max([14.4 * 1.25, *status.burn_rates.values()])
    for kind, windows, enabled in (("page", PAGE_WINDOWS, slo.alerts.page),
                                   ("ticket", TICKET_WINDOWS, slo.alerts.ticket)):
        for long, short, factor in windows:
            ln, sn = window_name(long), window_name(short)
            rate = status.burn_rates.get(ln, 0.0)
            pairs.append(BurnPair(kind, ln, sn, factor, rate, status.burn_rates.get(sn, 0.0),
                                  status.events.get(ln, 0.0), slo.alerts.min_events, enabled,
                                  burn_bar(rate, factor, top, ln)))
    return pairs


# --- drawings ---------------------------------------------------------------------------------


def budget_bar(status: SloStatus, width: int = 120, height: int = 12) -> Markup:
    """The budget left as a filled bar (empty when spent or unknown), coloured by state."""
    left = status.remaining
    filled = 0.0 if left is None else min(max(left, 0.0), 1.0) * width
    words = "budget left unknown" if left is None else f"{pct(left, 1)} of the error budget left"
    kind = STATE_CLASSES[status.state]
    return Markup(
        f'<svg class="budget-bar {kind}" role="img" aria-label="{escape(words)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(words)}</title>"
        f'<rect class="empty" x="0" y="0" width="{width}" height="{height}" rx="3"/>'
        f'<rect class="left" x="0" y="0" width="{filled:.1f}" height="{height}" rx="3"/></svg>')


def burn_bar(rate: float, factor: float, top: float, window: str, width: int = 160, height: int = 14
             ) -> Markup:
    """A burn rate as a bar on a scale to `top`, with its alert's factor as a tick."""
    def x(value: float) -> float:
        return min(max(value, 0.0), top) / top * width

    kind = "over" if rate > factor else "under"
    words = f"burn rate {rate:.2f} over {window}, alert above {factor:g}"
    return Markup(
        f'<svg class="burn-bar {kind}" role="img" aria-label="{escape(words)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(words)}</title>"
        f'<rect class="empty" x="0" y="2" width="{width}" height="{height - 4}"/>'
        f'<rect class="rate" x="0" y="2" width="{x(rate):.1f}" height="{height - 4}"/>'
        f'<line class="factor" x1="{x(factor):.1f}" y1="0" x2="{x(factor):.1f}" y2="{height}"/></svg>')


def budget_spark(down: burndown.BurnDown, name: str) -> Markup:
    """The budget left up to now, at most SPARK_POINTS points, on a 0 to 100 % scale (an
    overspent budget is drawn at 0)."""
    known = [v for t, v in zip(down.times, down.remaining, strict=True) if t <= down.now]
    every = max(1, -(-len(known) // SPARK_POINTS))
    picked = known[::-1][::every][::-1]  # keep the last point: now
    values = [None if v is None else max(v, 0.0) for v in picked]
    return sparkline(values, label=f"Error budget left of {name} over its window, now "
                                   f"{pct(down.last, 1)}", top=1.0)


def burndown_chart(name: str, down: burndown.BurnDown, first_hour: float | None) -> tuple[Markup, str]:
    """The burn-down as a time chart, and its sentence."""
    lowest = min([0.0, *(v for v in down.remaining if v is not None)])
    floor = lowest - 0.05 * (1.0 - lowest) if lowest < 0 else 0.0  # a line at the bottom stays visible
    left = down.last
    if left is None:
        words = "nothing to judge in the window yet"
    else:
        ideal = 1.0 - (down.now - down.start) / max(down.end - down.start, 1.0)
        words = f"{pct(left, 1)} left now"
        if down.end > down.now:
            words += f"; spending it evenly would leave {pct(ideal, 1)}"
        if lowest < 0:
            words += f"; lowest {pct(lowest, 1)}"
    known_from = first_hour if first_hour is not None and first_hour > down.start else None
    svg = time_chart(
        title=f"Error budget left of {name}: {words}", unit=Unit.RATIO, start=down.start, end=down.end,
        lines=[Line("budget left", down.times, down.remaining),
               Line("spent evenly", down.times, down.ideal)],
        thresholds=[Threshold(0.0, "0%: budget spent")], axis=(floor, 1.0),
        known_from=known_from, unknown_label="nothing recorded yet")
    return svg, words


def days_chart(slo: Slo, name: str, days: Sequence[burndown.DaySli], now: datetime) -> tuple[Markup, str]:
    """The SLI of each day (drawn at the middle of the day) against the objective."""
    times = [(d.start + d.end) / 2 for d in days]
    values = [d.sli for d in days]
    known = [v for v in values if v is not None]
    budget = 1.0 - slo.objective
    lowest = min([slo.objective - budget, *known])
    low = lowest - 0.05 * (1.0 - lowest)  # a day at the axis's bottom stays visible
    below = sum(1 for v in known if v < slo.objective - 1e-12)
    words = (f"worst day {pct(min(known))}, {below} of {len(known)} days below the objective"
             if known else "no events in the window yet")
    start = days[0].start if days else now.timestamp() - 86400
    svg = time_chart(
        title=f"SLI per day of {name}: {words}", unit=Unit.RATIO, start=start, end=now.timestamp(),
        lines=[Line("SLI", times, values)],
        thresholds=[Threshold(slo.objective, f"objective {pct(slo.objective)}")],
        axis=(max(low, 0.0), 1.0))
    return svg, words


def month_links(month: tuple[int, int], now: datetime) -> tuple[str, str | None]:
    """The months before and after `month` (the later one only when it has begun)."""
    year, number = month
    before = (year, number - 1) if number > 1 else (year - 1, 12)
    after = (year, number + 1) if number < 12 else (year + 1, 1)
    current = now.astimezone(UTC)
    started = after <= (current.year, current.month)
    return f"{before[0]:04d}-{before[1]:02d}", f"{after[0]:04d}-{after[1]:02d}" if started else None


def service_slos(session: Session, inv: Inventory, service_name: str, *, now: datetime,
                 kept: Mapping[str, SloStatus] | None = None) -> list[SloLine]:
    """The SLOs of one service with their budget left, for the service page."""
    slos = {name: slo for name, slo in inv.slos.items() if slo.service == service_name}
    return slo_lines(session, slos, now=now, kept=kept, sparks=False) if slos else []


def kept_statuses(plane: Any) -> Mapping[str, SloStatus] | None:
    """The SLO worker's statuses, when it runs in this process."""
    worker = plane.context.slos
    return worker.statuses if worker is not None else None
