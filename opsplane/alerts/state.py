"""The life of an alert: inactive -> pending -> firing -> resolved, as a pure function.

Each evaluation takes a rule, the series its expression returned, the alerts the rule had
after the previous evaluation and the time, and returns the rule's alerts now plus the
transitions between. Nothing here reads a clock or a database, so the same code runs in the
control plane, after a restart from stored alerts, and in tests with any clock.

The semantics are Prometheus's: an alert is pending from the first evaluation that returns
its series and fires at the first evaluation at least `for` later; a pending alert whose
series disappears is forgotten (so a flapping condition starts its `for` again); a firing
alert whose series disappears resolves, unless `keep_firing_for` holds it; a resolved alert
is kept until receivers have heard about it (see `may_forget`), and a series that comes
back after resolving starts a new alert, pending again.

A rule is known by its name and labels (`rule_id`). When the configuration no longer has a
rule of an id (it was removed, or its name, severity or labels were edited, which makes it
another rule), that id's firing alerts resolve with the reason in their RESOLVED_REASON
annotation, so receivers and incidents hear that they are over; its pending alerts are
forgotten. An edit that keeps the id (expression, `for`, annotations...) keeps the alerts,
which the edited rule evaluates from then on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from opsplane.alerts.models import AlertRule
from opsplane.alerts.templates import parse_template
from opsplane.runbooks.models import named_runbook, run_command

RESOLVED_RETENTION = timedelta(minutes=15)
"""How long a resolved alert is kept at least (`opsplane alerts --all` shows it meanwhile)."""
RESOLVED_KEPT_AT_MOST = timedelta(days=1)
"""How long a resolved alert is kept at most while a receiver still waits for its resolution
(one whose deliveries keep failing): nothing is kept for ever."""
RESOLVED_REASON = "resolved_reason"
"""The annotation that says why an alert resolved though its series did not go away."""
RULE_SOURCE = "rule"
"""The `source` of alerts that opsplane's own rules make (others are received, see intake)."""

Sample = tuple[Mapping[str, str], float]
Evaluate = Callable[[str, datetime], Sequence[Sample]]
"""What the rules need from a query engine: the instant vector of `expr` at a time."""


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def rule_id(rule: AlertRule) -> str:
    """A rule's identity: its name and static labels, e.g. HighCpu{severity="P1"}."""
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(rule.static_labels().items()) if k != "alertname")
    return f"{rule.name}{{{labels}}}"


def fingerprint(labels: Mapping[str, str]) -> str:
    """An alert's identity: a hash of all its labels (alertname included)."""
    encoded = json.dumps(sorted(labels.items()), separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """One alert of one rule: a labelled series the rule's expression returned."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    state: AlertState
    value: float
    annotations: Mapping[str, str]
    active_at: datetime
    last_seen_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None
    # Alerts received from elsewhere (a Prometheus): where from, when they end unless sent
    # again, and the sender's link to the expression.
    ends_at: datetime | None = None
    source: str = RULE_SOURCE
    generator_url: str = ""
    # what the value measures (the rule's `unit`, opsplane.units); None: a plain number
    unit: str | None = None

    @property
    def name(self) -> str:
        return self.labels["alertname"]


@dataclass(frozen=True)
class Transition:
    alert: Alert
    before: AlertState
    after: AlertState
    reason: str | None = None  # why, when it is not the series (a rule removed or changed)


@dataclass(frozen=True)
class RuleEvaluation:
    """A rule's alerts after one evaluation; `dropped` are fingerprints it no longer keeps."""

    alerts: list[Alert]
    transitions: list[Transition]
    dropped: list[str]
    error: str | None = None


class DuplicateSeriesError(ValueError):
    """Two series became the same alert once the rule's labels were applied."""


def alert_labels(rule: AlertRule, series: Mapping[str, str]) -> dict[str, str]:
    """The alert's labels: the series' labels without the metric name, then the rule's."""
    labels = {k: v for k, v in series.items() if k != "__name__"}
    labels.update(rule.static_labels())
    return labels


def annotate(rule: AlertRule, labels: Mapping[str, str], value: float) -> dict[str, str]:
    unit = rule.unit.value if rule.unit else None
    rendered = {key: parse_template(text).render(labels, value, unit)
                for key, text in rule.annotations.items()}
    if named_runbook(rule.runbook):
        rendered.setdefault("runbook", run_command(rule.runbook or ""))
    elif rule.runbook:
        rendered.setdefault("runbook_url", rule.runbook)
    return rendered


def runbook_of(annotations: Mapping[str, str]) -> str | None:
    """What an alert says of its runbook: its link (`runbook_url`), else how to run it (`runbook`)."""
    return annotations.get("runbook_url") or annotations.get("runbook") or None


def may_forget(resolved_since: datetime, now: datetime, *, owed: bool) -> bool:
    """Whether an alert resolved since `resolved_since` may be forgotten at `now`. It is kept
    RESOLVED_RETENTION for people to see, and while its resolution is `owed` to a receiver
    (told that it fired, it has not yet been sent that it resolved: routing.owed_resolutions),
    at most RESOLVED_KEPT_AT_MOST, so that a resolution due after a long group_interval or a
    failed delivery still reaches the pager that was paged."""
    kept = now - resolved_since
    return kept >= RESOLVED_RETENTION and (not owed or kept >= RESOLVED_KEPT_AT_MOST)


def evaluate_rule(
    rule: AlertRule, samples: Iterable[Sample], previous: Mapping[str, Alert], now: datetime,
    owed: Container[str] = frozenset(),
) -> RuleEvaluation:
    """The rule's alerts at `now`, given its alerts before (by fingerprint) and the series
    its expression returned; `owed` are the resolved alerts whose resolution a receiver still
    waits for. Raises DuplicateSeriesError when two series collide."""
    current = _current(rule, samples)
    alerts: list[Alert] = []
    transitions: list[Transition] = []
    dropped: list[str] = []
    for key, (labels, value) in current.items():
        before = previous.get(key)
        alert = _seen(rule, before, key, labels, value, now)
        alerts.append(alert)
        _note(transitions, before, alert)
    for key, before in previous.items():
        if key in current:
            continue
        after = _unseen(rule, before, now, owed)
        if after is None:
            dropped.append(key)
            if before.state is AlertState.PENDING:
                transitions.append(Transition(before, AlertState.PENDING, AlertState.INACTIVE))
            continue
        alerts.append(after)
        _note(transitions, before, after)
    return RuleEvaluation(alerts, transitions, dropped)


def _current(rule: AlertRule, samples: Iterable[Sample]) -> dict[str, tuple[dict[str, str], float]]:
    current: dict[str, tuple[dict[str, str], float]] = {}
    for series, value in samples:
        labels = alert_labels(rule, series)
        key = fingerprint(labels)
        if key in current:
            raise DuplicateSeriesError(
                f"rule {rule.name}: two series have the same labels {_show(labels)} once the rule's "
                "labels are added; aggregate them or keep a label that tells them apart"
            )
        current[key] = (labels, float(value))
    return current


def _show(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _note(transitions: list[Transition], before: Alert | None, after: Alert) -> None:
    was = AlertState.INACTIVE if before is None else before.state
    if was is AlertState.RESOLVED and after.state is AlertState.PENDING:
        # A series back after resolving is a new alert: it passes through inactive.
        was = AlertState.INACTIVE
    if was is not after.state:
        transitions.append(Transition(after, was, after.state))


def _seen(
    rule: AlertRule, before: Alert | None, key: str, labels: dict[str, str], value: float, now: datetime
) -> Alert:
    """The alert when its series is in this evaluation's result."""
    annotations = annotate(rule, labels, value)
    unit = rule.unit.value if rule.unit else None
    if before is None or before.state in (AlertState.INACTIVE, AlertState.RESOLVED):
        hold = rule.for_ or 0.0
        state = AlertState.FIRING if hold == 0 else AlertState.PENDING
        return Alert(
            fingerprint=key, rule=rule_id(rule), labels=labels, state=state, value=value,
            annotations=annotations, active_at=now, last_seen_at=now,
            fired_at=now if state is AlertState.FIRING else None, unit=unit,
        )
    alert = replace(before, value=value, annotations=annotations, last_seen_at=now, keep_firing_since=None,
                    unit=unit)
    held = (now - alert.active_at).total_seconds()
    if alert.state is AlertState.PENDING and held >= (rule.for_ or 0.0):
        alert = replace(alert, state=AlertState.FIRING, fired_at=now)
    return alert


def _unseen(rule: AlertRule, before: Alert, now: datetime, owed: Container[str]) -> Alert | None:
    """The alert when its series is missing from this evaluation; None: forget it."""
    if before.state in (AlertState.PENDING, AlertState.INACTIVE):
        return None
    if before.state is AlertState.RESOLVED:
        forget = may_forget(before.resolved_at or now, now, owed=before.fingerprint in owed)
        return None if forget else before
    since = before.keep_firing_since or now
    if rule.keep_firing_for and (now - since).total_seconds() < rule.keep_firing_for:
        return replace(before, keep_firing_since=since)
    return replace(before, state=AlertState.RESOLVED, resolved_at=now, keep_firing_since=None)


@dataclass
class EvaluationCycle:
    """Every rule evaluated once: all alerts kept, what changed, and rules that failed."""

    alerts: list[Alert] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def evaluate_rules(
    rules: Sequence[AlertRule], evaluate: Evaluate, previous: Iterable[Alert], now: datetime,
    owed: Container[str] = frozenset(),
) -> EvaluationCycle:
    """Evaluate every rule at `now` (`owed`: resolved alerts a receiver still waits to hear
    of). A rule whose query fails keeps its alerts as they were (an engine hiccup must
    neither resolve nor page anything) and its error is reported."""
    by_rule: dict[str, dict[str, Alert]] = {}
    for alert in previous:
        by_rule.setdefault(alert.rule, {})[alert.fingerprint] = alert
    cycle = EvaluationCycle()
    for rule in rules:
        key = rule_id(rule)
        before = by_rule.pop(key, {})
        try:
            result = evaluate_rule(rule, evaluate(rule.expr, now), before, now, owed)
        except Exception as exc:  # the engine is a plug-in: whatever it raises is this rule's error
            cycle.errors[key] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            cycle.alerts.extend(before.values())
            continue
        cycle.alerts.extend(result.alerts)
        cycle.transitions.extend(result.transitions)
        cycle.dropped.extend(result.dropped)
    evaluated = {alert.fingerprint for alert in cycle.alerts}
    for key, gone in by_rule.items():  # rules no longer in the configuration
        reason = _retired_because(key, gone.values(), rules)
        result = retire(gone, reason, now, owed)
        cycle.transitions.extend(result.transitions)
        cycle.dropped.extend(result.dropped)
        for alert in result.alerts:
            if alert.fingerprint in evaluated:  # a rule of today has these very labels: its alert now
                cycle.dropped.append(alert.fingerprint)
            else:
                cycle.alerts.append(alert)
    return cycle


def retire(
    previous: Mapping[str, Alert], reason: str, now: datetime, owed: Container[str] = frozenset()
) -> RuleEvaluation:
    """The alerts of a rule the configuration no longer has: firing ones resolve now, whatever
    `keep_firing_for` said, with `reason` in their RESOLVED_REASON annotation; pending ones are
    forgotten; resolved ones are kept as long as any resolved alert (`may_forget`)."""
    result = RuleEvaluation([], [], [])
    for key, before in previous.items():
        if before.state is AlertState.FIRING:
            after = replace(before, state=AlertState.RESOLVED, resolved_at=now, keep_firing_since=None,
                            annotations={**before.annotations, RESOLVED_REASON: reason})
            result.alerts.append(after)
            result.transitions.append(Transition(after, AlertState.FIRING, AlertState.RESOLVED, reason))
        elif before.state is AlertState.RESOLVED and not may_forget(
                before.resolved_at or now, now, owed=key in owed):
            result.alerts.append(before)
        else:
            result.dropped.append(key)
            if before.state is AlertState.PENDING:
                result.transitions.append(Transition(before, AlertState.PENDING, AlertState.INACTIVE, reason))
    return result


def _retired_because(key: str, alerts: Iterable[Alert], rules: Sequence[AlertRule]) -> str:
    """Why the alerts of rule `key` end: the rule was changed (a rule of its name is still
    there, with other labels or severity) or removed."""
    names = {alert.name for alert in alerts}
    same_name = sorted(rule_id(rule) for rule in rules if rule.name in names)
    if same_name:
        return f"rule {key} was changed; the configuration has {', '.join(same_name)} now"
    return f"rule {key} was removed from the configuration"
