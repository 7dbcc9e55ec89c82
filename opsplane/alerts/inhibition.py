"""Inhibition: firing alerts that mute others, so one fault is one page.

Two sources: the inventory's inhibition rules (Alertmanager's semantics), and, by default,
its `depends_on` graph: while an alert about a component fires, alerts about the components
that depend on it are muted, and each muted alert knows its root cause, so the page about
the cause can list what it explains. The dependents stay muted for `hold` after the cause
resolves: their own rules look back over windows (five minutes of error rates) that still
hold the failures the cause made, and would otherwise page for it once it is fixed.

A dependency's alert mutes only dependents' alerts at most `more_severe` levels more severe
than itself; by default (0) only those as severe or less, so a P3 disk warning on the
database never hides a P0 of a service that needs it. An inhibition rule says exactly what
it mutes, whatever the severities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsplane.alerts.matchers import matches_all
from opsplane.alerts.models import InhibitRule, Severity
from opsplane.alerts.state import Alert, AlertState

COMPONENT_LABEL = "service"
SEVERITY_LABEL = "severity"
_RANKS = {severity.value: rank for rank, severity in enumerate(Severity)}  # P0 most severe: 0


def severity_rank(labels: Mapping[str, str]) -> int:
    """0 for P0 up to 3 for P3; an alert without one of those severities ranks below P3."""
    return _RANKS.get(labels.get(SEVERITY_LABEL, ""), len(_RANKS))


def may_mute(source: Mapping[str, str], target: Mapping[str, str], more_severe: int = 0) -> bool:
    """Whether a dependency's alert with labels `source` may mute a dependent's alert with
    labels `target`: the target is at most `more_severe` levels more severe than the source."""
    return severity_rank(source) - severity_rank(target) <= more_severe


@dataclass(frozen=True)
class Inhibition:
    """Why an alert is muted: the firing alert that explains it, and by which rule."""

    target: Alert
    cause: Alert
    reason: str


def dependents(depends_on: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """For each component, every component that needs it directly or through others."""
    needed_by: dict[str, set[str]] = {}
    for component, needs in depends_on.items():
        for need in needs:
            needed_by.setdefault(need, set()).add(component)
    closure: dict[str, set[str]] = {}
    for component in needed_by:
        seen: set[str] = set()
        stack = [component]
        while stack:
            for dependent in needed_by.get(stack.pop(), ()):
                if dependent not in seen:
                    seen.add(dependent)
                    stack.append(dependent)
        closure[component] = seen
    return closure


def inhibitions(
    alerts: Iterable[Alert],
    rules: Sequence[InhibitRule] = (),
    depends_on: Mapping[str, Sequence[str]] | None = None,
    *,
    now: datetime | None = None,
    hold: float = 0.0,
    more_severe: int = 0,
) -> dict[str, Inhibition]:
    """The firing alerts that are muted, by fingerprint, each with its cause. A dependency
    that resolved less than `hold` seconds before `now` still mutes its dependents, those of
    its dependents' alerts at most `more_severe` levels more severe than its own."""
    alerts = list(alerts)
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    muted: dict[str, Inhibition] = {}
    if depends_on:
        causes = firing
        if hold > 0 and now is not None:
            since = now - timedelta(seconds=hold)
            causes = firing + [a for a in alerts if a.state is AlertState.RESOLVED
                               and a.resolved_at is not None and a.resolved_at > since]
        muted.update(_by_dependencies(firing, causes, dependents(depends_on), more_severe))
    for index, rule in enumerate(rules):
        for target in firing:
            if target.fingerprint in muted:
                continue
            cause = _rule_source(rule, target, firing)
            if cause is not None:
                muted[target.fingerprint] = Inhibition(target, cause, f"inhibit_rules[{index}]")
    return muted


def _rule_source(rule: InhibitRule, target: Alert, firing: Sequence[Alert]) -> Alert | None:
    if not matches_all(rule.target_matchers, target.labels):
        return None
    # An alert matching both sides must not be muted by one that also matches both
    # (two such alerts would mute each other and nobody would be told): Alertmanager's rule.
    two_sided = matches_all(rule.source_matchers, target.labels)
    for source in firing:
        if source.fingerprint == target.fingerprint:
            continue
        if not matches_all(rule.source_matchers, source.labels):
            continue
        if two_sided and matches_all(rule.target_matchers, source.labels):
            continue
        if all(source.labels.get(name, "") == target.labels.get(name, "") for name in rule.equal):
            return source
    return None


def _by_dependencies(firing: Sequence[Alert], sources: Sequence[Alert],
                     needed_by: Mapping[str, set[str]], more_severe: int) -> dict[str, Inhibition]:
    """Firing alerts about components whose dependency has an alert among `sources` in the
    same environment, severe enough to mute them; the cause is the one furthest down the
    dependency chain (the root cause)."""
    muted: dict[str, Inhibition] = {}
    for target in firing:
        component = target.labels.get(COMPONENT_LABEL)
        if not component:
            continue
        causes = [
            source for source in sources
            if (cause := source.labels.get(COMPONENT_LABEL))
            and component in needed_by.get(cause, ())
            and source.labels.get("env", "") == target.labels.get("env", "")
            and may_mute(source.labels, target.labels, more_severe)
        ]
        if causes:
            muted[target.fingerprint] = Inhibition(target, _root(causes, needed_by), "depends_on")
    return muted


def _root(causes: Sequence[Alert], needed_by: Mapping[str, set[str]]) -> Alert:
    components = {c.labels[COMPONENT_LABEL] for c in causes}

    def downstream(alert: Alert) -> bool:
        own = alert.labels[COMPONENT_LABEL]
        return any(own in needed_by.get(other, ()) for other in components if other != own)

    roots = [c for c in causes if not downstream(c)] or list(causes)
    # A cause that still fires names the page before one that resolved.
    return min(roots, key=lambda a: (a.state is not AlertState.FIRING, a.labels.get("severity", ""),
                                     a.name, a.fingerprint))
