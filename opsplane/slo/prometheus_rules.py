"""The inventory's SLOs as Prometheus rule groups, for teams whose Prometheus pages on them.

Per SLO, in the shape Sloth made common:
- `opsplane-slo-<name>-sli`: the SLI's error ratio over each window the burn alerts read,
  `slo:sli_error:ratio_rate5m` ... `slo:sli_error:ratio_rate3d`, and the events counted in it,
  `slo:sli_events:count5m` ..., which `min_events` is checked against;
- `opsplane-slo-<name>-slices` (time-sliced SLOs only): evaluated once per slice, whether the
  slice just ended was bad, `slo:sli_bad_slice:bool`; the windows above then hold the share of
  bad slices and the number of slices with traffic instead of events;
- `opsplane-slo-<name>-meta`: `slo:objective:ratio`, `slo:error_budget:ratio`,
  `slo:current_burn_rate:ratio`, and for rolling windows the whole window's error ratio, burn
  rate and remaining budget (a calendar window's start is opsplane's to compute);
- `opsplane-slo-<name>-alerts`: `SLOFastBurn` (page: 14.4x over 1h and 5m, or 6x over 6h and 30m)
  and `SLOSlowBurn` (ticket: 3x over 1d and 2h, or 1x over 3d and 6h), no `for`: the short
  window already makes a blip end the alert. Each carries the SLO's severities.

Every series carries `slo` and `service` labels. A checks SLI reads opsplane's own health-check
results, which Prometheus does not have: such SLOs are named in the notes and left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsplane.alerts.pack import prometheus_duration
from opsplane.slo.models import PAGE_WINDOWS, TICKET_WINDOWS, Slo

# Every window a burn alert reads, short and long (models.PAGE_WINDOWS / TICKET_WINDOWS).
WINDOWS: tuple[float, ...] = tuple(sorted({w for pair in PAGE_WINDOWS + TICKET_WINDOWS for w in pair[:2]}))
ERROR_RATIO = "slo:sli_error:ratio_rate"
EVENTS = "slo:sli_events:count"
BAD_SLICE = "slo:sli_bad_slice:bool"
FAST_BURN = "SLOFastBurn"
SLOW_BURN = "SLOSlowBurn"
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.DOTALL)


@dataclass
class SloRules:
    """The rule groups for a rule file's `groups:`, and the SLOs that could not be exported."""

    groups: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slo_rule_groups(slos: Mapping[str, Slo]) -> SloRules:
    """The recording, metadata and burn-alert groups of every SLO Prometheus can compute."""
    rules = SloRules()
    for name, slo in slos.items():
        if slo.sli.checks is not None:
            rules.notes.append(f"slo {name}: its SLI is opsplane's health-check results, which Prometheus "
                               "does not have; opsplane alone computes it")
            continue
        rules.groups.extend(_groups(name, slo))
    return rules


def budget(slo: Slo) -> float:
    """The error budget as a ratio, 0.001 for 99.9% (rounded so that PromQL shows 0.001)."""
    return round(1 - slo.objective, 12)


def window_name(seconds: float) -> str:
    """The suffix of a window's series name: 5m, 1h, 3d."""
    return prometheus_duration(seconds)


def histogram_series(histogram: str, suffix: str, extra: str = "") -> str:
    """`name{matchers}` of a histogram as its `name_bucket` / `name_count` selector, with `extra`
    matchers added; ValueError when `histogram` is not a plain selector."""
    found = _SELECTOR.match(histogram)
    if found is None:
        raise ValueError(f"{histogram!r} is not a metric name with optional {{matchers}}")
    name, matchers = found.group(1), (found.group(2) or "").strip().rstrip(",")
    inner = ",".join(part for part in (matchers, extra) if part)
    return f"{name}{suffix}{{{inner}}}" if inner else f"{name}{suffix}"


def le_matcher(threshold: float) -> str:
    """The `le` matcher of the bucket at `threshold` seconds. Clients spell whole numbers
    differently (Go writes le="1", Python le="1.0"), so those get a regex that takes both."""
    if threshold == int(threshold):
        return f'le=~"{int(threshold)}(\\\\.0)?"'
    return f'le="{threshold!r}"'


def good_and_total(slo: Slo) -> tuple[str | None, str | None, str]:
    """The SLI's (good, bad, total) counter selectors; exactly one of good and bad is set."""
    if slo.sli.events is not None:
        return slo.sli.events.good, slo.sli.events.bad, slo.sli.events.total
    latency = slo.sli.latency
    if latency is None:
        raise ValueError("a checks SLI has no counters")
    good = histogram_series(latency.histogram, "_bucket", le_matcher(latency.threshold))
    return good, None, histogram_series(latency.histogram, "_count")


def error_ratio(slo: Slo, window: str) -> str:
    """PromQL of the share of bad events over `window`. A missing good or bad series counts as
    none of them (a service that never failed has no 5xx series yet)."""
    good, bad, total = good_and_total(slo)
    all_events = f"sum(rate({total}[{window}]))"
    if bad is not None:
        return f"(sum(rate({bad}[{window}])) or vector(0)) / {all_events}"
    return f"1 - (sum(rate({good}[{window}])) or vector(0)) / {all_events}"


def _groups(name: str, slo: Slo) -> list[dict[str, Any]]:
    labels = {"slo": name, "service": slo.service}
    picked = f'{{slo="{name}"}}'
    groups: list[dict[str, Any]] = []
    sli: list[dict[str, Any]] = []
    _, _, total = good_and_total(slo)
    if slo.budgeting == "occurrences":
        for seconds in WINDOWS:
            window = window_name(seconds)
            sli.append({"record": ERROR_RATIO + window, "expr": error_ratio(slo, window),
                        "labels": dict(labels)})
            sli.append({"record": EVENTS + window, "expr": f"sum(increase({total}[{window}]))",
                        "labels": dict(labels)})
    else:
        groups.append(_slice_group(name, slo, labels))
        for seconds in WINDOWS:
            # a window shorter than a slice reads the last slice, not nothing
            window, reach = window_name(seconds), window_name(max(seconds, slo.timeslice))
            sli.append({"record": ERROR_RATIO + window,
                        "expr": f"avg_over_time({BAD_SLICE}{picked}[{reach}])", "labels": dict(labels)})
            sli.append({"record": EVENTS + window,
                        "expr": f"count_over_time({BAD_SLICE}{picked}[{reach}])", "labels": dict(labels)})
    groups.insert(0, {"name": f"opsplane-slo-{name}-sli", "rules": sli})
    groups.append({"name": f"opsplane-slo-{name}-meta", "rules": _meta(slo, picked, labels)})
    alerts = [rule for page in (True, False) if (rule := _burn_alert(name, slo, page=page))]
    if alerts:
        groups.append({"name": f"opsplane-slo-{name}-alerts", "rules": alerts})
    return groups


def _slice_group(name: str, slo: Slo, labels: dict[str, str]) -> dict[str, Any]:
    """One evaluation per slice: 1 when the slice just ended missed `timeslice_target`, 0 when it
    met it, nothing when it had no traffic (such a slice is neither good nor bad)."""
    slice_ = window_name(slo.timeslice)
    _, _, total = good_and_total(slo)
    missed = round(1 - slo.slice_target, 12)
    expr = f"({error_ratio(slo, slice_)}) > bool {missed!r} and sum(rate({total}[{slice_}])) > 0"
    return {"name": f"opsplane-slo-{name}-slices", "interval": slice_,
            "rules": [{"record": BAD_SLICE, "expr": expr, "labels": dict(labels)}]}


def _meta(slo: Slo, picked: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    allowed = budget(slo)
    rules: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": f"vector({slo.objective!r})", "labels": dict(labels)},
        {"record": "slo:error_budget:ratio", "expr": f"vector({allowed!r})", "labels": dict(labels)},
        {"record": "slo:current_burn_rate:ratio", "expr": f"{ERROR_RATIO}5m{picked} / {allowed!r}",
         "labels": dict(labels)},
    ]
    period = slo.rolling_seconds
    if period is not None:
        window = window_name(period)
        # The mean of the 5-minute ratios: reading the raw counters over 30 days at every
        # evaluation would be far dearer for the same answer.
        rules += [
            {"record": "slo:time_period:days", "expr": f"vector({period / 86400:g})", "labels": dict(labels)},
            {"record": ERROR_RATIO + window, "expr": f"avg_over_time({ERROR_RATIO}5m{picked}[{window}])",
             "labels": dict(labels)},
            {"record": "slo:period_burn_rate:ratio", "expr": f"{ERROR_RATIO}{window}{picked} / {allowed!r}",
             "labels": dict(labels)},
            {"record": "slo:period_error_budget_remaining:ratio",
             "expr": f"1 - slo:period_burn_rate:ratio{picked}", "labels": dict(labels)},
        ]
    return rules


def _burn_alert(name: str, slo: Slo, *, page: bool) -> dict[str, Any] | None:
    settings = slo.alerts
    if not (settings.page if page else settings.ticket):
        return None
    allowed = budget(slo)
    picked = f'{{slo="{name}"}}'
    conditions = []
    for long, short, factor in PAGE_WINDOWS if page else TICKET_WINDOWS:
        long_name, short_name = window_name(long), window_name(short)
        # The long window first: its burn rate is the alert's value.
        parts = [f"{ERROR_RATIO}{long_name}{picked} / {allowed!r} > {factor!r}",
                 f"{ERROR_RATIO}{short_name}{picked} / {allowed!r} > {factor!r}"]
        if settings.min_events:
            parts.append(f"{EVENTS}{long_name}{picked} >= {settings.min_events}")
        conditions.append("(" + " and ".join(parts) + ")")
    severity = settings.page_severity if page else settings.ticket_severity
    kind = "fast" if page else "slow"
    annotations = {
        "summary": f"SLO {name} ({{{{ $labels.service }}}}): the error budget burns "
                   f"{{{{ $value | humanize }}}} times as fast as {slo.objective * 100:g}% "
                   "over the window allows",
        "description": f"A {kind} burn of the error budget of {name}"
                       f"{': ' + slo.description if slo.description else ''}.",
    }
    if settings.runbook:
        annotations["runbook_url"] = settings.runbook
    return {"alert": FAST_BURN if page else SLOW_BURN, "expr": " or ".join(conditions),
            "labels": {"severity": severity.value, "slo": name, "service": slo.service},
            "annotations": annotations}
