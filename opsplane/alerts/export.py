"""The alerting section as Prometheus rule files and an Alertmanager configuration.

Teams that run Prometheus and Alertmanager get the same rules, routes, receivers and
inhibitions opsplane uses. What those tools cannot express is left out and named in the
returned notes instead of being approximated silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplane.alerts.inhibition import COMPONENT_LABEL, SEVERITY_LABEL, dependents, may_mute
from opsplane.alerts.matchers import Matcher, MatchOp
from opsplane.alerts.models import AlertingSettings, AlertRule, Receiver, Route, Severity
from opsplane.alerts.pack import effective_rules, prometheus_duration
from opsplane.alerts.templates import for_prometheus
from opsplane.runbooks.models import named_runbook, run_command
from opsplane.slo.models import Slo
from opsplane.slo.prometheus_rules import slo_rule_groups


@dataclass
class Export:
    """The documents to write, and what could not be expressed in them."""

    rules: dict[str, Any]
    alertmanager: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def export(
    settings: AlertingSettings,
    *,
    depends_on: Mapping[str, Sequence[str]] | None = None,
    slos: Mapping[str, Slo] | None = None,
) -> Export:
    """The rule file (opsplane's rules, then each SLO's groups) and alertmanager.yml."""
    notes: list[str] = []
    alertmanager: dict[str, Any] = {
        "route": _route(settings.route, top=True),
        "receivers": [_receiver(name, receiver, notes) for name, receiver in settings.receivers.items()],
    }
    inhibit = [
        {"source_matchers": [str(m) for m in rule.source_matchers],
         "target_matchers": [str(m) for m in rule.target_matchers],
         **({"equal": list(rule.equal)} if rule.equal else {})}
        for rule in settings.inhibit_rules
    ]
    if settings.inhibit_dependents and depends_on:
        inhibit += _dependency_inhibitions(depends_on, settings.inhibit_dependents_more_severe)
    if inhibit:
        alertmanager["inhibit_rules"] = inhibit
    if settings.maintenance_windows:
        names = ", ".join(settings.maintenance_windows)
        notes.append(f"maintenance windows ({names}) are not exported: Alertmanager mutes by route, not by "
                     "matchers; add mute_time_intervals to the routes they concern")
    rules = {"groups": [{
        "name": "opsplane",
        "interval": prometheus_duration(settings.evaluation_interval),
        "rules": [_rule(rule) for rule in effective_rules(settings)],
    }]}
    if slos:
        slo_rules = slo_rule_groups(slos)
        rules["groups"] += slo_rules.groups
        notes += slo_rules.notes
    return Export(rules, alertmanager, notes)


def _rule(rule: AlertRule) -> dict[str, Any]:
    exported: dict[str, Any] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_:
        exported["for"] = prometheus_duration(rule.for_)
    if rule.keep_firing_for:
        exported["keep_firing_for"] = prometheus_duration(rule.keep_firing_for)
    exported["labels"] = {k: v for k, v in rule.static_labels().items() if k != "alertname"}
    unit = rule.unit.value if rule.unit else None
    # A bare {{ $value }} reads in the rule's unit in opsplane; Prometheus prints it raw
    # unless told which of its functions to use.
    annotations = {key: for_prometheus(text, unit) for key, text in rule.annotations.items()}
    if named_runbook(rule.runbook):
        annotations.setdefault("runbook", run_command(rule.runbook or ""))
    elif rule.runbook:
        annotations.setdefault("runbook_url", rule.runbook)
    if unit:
        # An annotation, not a label: a label would become part of the alert's identity, and
        # a Prometheus rule takes no other keys.
        annotations.setdefault("unit", unit)
    if annotations:
        exported["annotations"] = annotations
    return exported


def _route(route: Route, *, top: bool = False) -> dict[str, Any]:
    exported: dict[str, Any] = {}
    if route.receiver:
        exported["receiver"] = route.receiver
    if route.matchers and not top:
        exported["matchers"] = [str(m) for m in route.matchers]
    if route.group_by is not None:
        exported["group_by"] = list(route.group_by)
    for name in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(route, name)
        if value is not None:
            exported[name] = prometheus_duration(value)
    if route.continue_ and not top:
        exported["continue"] = True
    if route.routes:
        exported["routes"] = [_route(child) for child in route.routes]
    return exported


def _receiver(name: str, receiver: Receiver, notes: list[str]) -> dict[str, Any]:
    exported: dict[str, Any] = {"name": name}
    if receiver.webhook is None:
        return exported
    config: dict[str, Any] = {"url": receiver.webhook.url, "send_resolved": receiver.send_resolved}
    token = receiver.webhook.bearer_token
    if token is not None and token.startswith("file:"):
        config["http_config"] = {"authorization": {"credentials_file": token.removeprefix("file:")}}
    elif token is not None:
        notes.append(f"receiver {name}: the bearer token {token} is an environment variable, which "
                     "Alertmanager cannot read; give it as file:/path to export it")
    exported["webhook_configs"] = [config]
    return exported


def _dependency_inhibitions(
    depends_on: Mapping[str, Sequence[str]], more_severe: int
) -> list[dict[str, Any]]:
    """Per component with dependents: its alerts mute theirs in the same env, those at most
    `more_severe` levels more severe than its own; one rule per severity of the source unless
    every severity may mute every other."""
    levels = [severity.value for severity in Severity]
    reach = {source: [target for target in levels
                      if may_mute({SEVERITY_LABEL: source}, {SEVERITY_LABEL: target}, more_severe)]
             for source in levels}
    rules = []
    for component, needing in sorted(dependents(depends_on).items()):
        source = [str(Matcher(COMPONENT_LABEL, MatchOp.EQUAL, component))]
        target = [str(Matcher(COMPONENT_LABEL, MatchOp.REGEX, "|".join(sorted(needing))))]
        if all(muted == levels for muted in reach.values()):
            rules.append({"source_matchers": source, "target_matchers": target, "equal": ["env"]})
            continue
        for severity, muted in reach.items():
            rules.append({
                "source_matchers": [*source, _severities([severity])],
                "target_matchers": target if muted == levels else [*target, _severities(muted)],
                "equal": ["env"],
            })
    return rules


def _severities(severities: Sequence[str]) -> str:
    if len(severities) == 1:
        return str(Matcher(SEVERITY_LABEL, MatchOp.EQUAL, severities[0]))
    return str(Matcher(SEVERITY_LABEL, MatchOp.REGEX, "|".join(severities)))


RULES_FILE = "opsplane-rules.yml"
ALERTMANAGER_FILE = "alertmanager.yml"


def write(exported: Export, directory: Path) -> list[Path]:
    """Write the rule file and alertmanager.yml into `directory`; the paths written."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in ((RULES_FILE, exported.rules), (ALERTMANAGER_FILE, exported.alertmanager)):
        path = directory / name
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        written.append(path)
    return written
