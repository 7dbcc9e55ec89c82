"""The SLOs' load-time checks, beside the inventory's own (`config.loader.cross_check`): each SLO's
service is a component, a checks SLI's component exists and has checks, event and latency
selectors are plain PromQL selectors the engine parses, and some component is scraped for
them (unless a Prometheus answers: `metrics.source: prometheus`)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

Problem = tuple[tuple[str | int, ...], str]
LONGEST_SLICE = 86400.0  # minutes are kept three days; a slice is judged from its minutes


def slo_problems(inv: Inventory) -> list[Problem]:
    """Every SLO's problems, with its path in the file."""
    if not inv.slos:
        return []
    components = {name: component for _, name, component in inv.components()}
    scraped = sorted(name for name, component in components.items() if component.metrics_path)
    problems: list[Problem] = []
    for name, slo in inv.slos.items():
        at = ("slos", name)
        if slo.service not in components:
            problems.append(((*at, "service"),
                             f"unknown component {slo.service!r}{_suggest(slo.service, components)}"))
        if slo.budgeting == "timeslices" and slo.timeslice > LONGEST_SLICE:
            problems.append(((*at, "timeslice"), "a time slice may be a day at most"))
        sli = slo.sli
        if sli.checks is not None:
            whose = sli.checks.component or slo.service
            where = (*at, "sli", "checks", "component") if sli.checks.component else (*at, "service")
            if sli.checks.component is not None and whose not in components:
                problems.append((where, f"unknown component {whose!r}{_suggest(whose, components)}"))
            elif whose in components and not components[whose].checks:
                problems.append((where, f"{whose} has no checks: a checks SLI counts their results"))
            continue
        if sli.events is not None:
            selectors = [("events", field, getattr(sli.events, field)) for field in ("good", "bad", "total")
                         if getattr(sli.events, field) is not None]
        else:
            assert sli.latency is not None
            selectors = [("latency", "histogram", sli.latency.histogram)]
        problems.extend(_selector_problems(at, selectors))
        if inv.metrics.source != "prometheus" and not scraped:
            kind, field, text = selectors[-1]
            problems.append(((*at, "sli", kind, field),
                             f"nothing is scraped, so {text} has no samples: give {slo.service} (or the "
                             "component that exposes it) a metrics_path, or read metrics from Prometheus "
                             "(metrics.source: prometheus)"))
    return problems


def _selector_problems(at: tuple[str | int, ...], selectors: list[tuple[str, str, str]]) -> list[Problem]:
    from opsplane.metrics.promql import PromQLError
    from opsplane.slo.record import selector

    problems: list[Problem] = []
    for kind, field, text in selectors:
        try:
            selector(text)
        except PromQLError as exc:
            problems.append(((*at, "sli", kind, field), str(exc)))
    return problems


def _suggest(word: str, choices: object) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)  # type: ignore[call-overload]
    return f"; did you mean {close[0]!r}?" if close else ""
