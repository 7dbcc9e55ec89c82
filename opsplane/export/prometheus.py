"""The inventory's alerting as Prometheus rule files and an Alertmanager configuration.

A team that keeps its Prometheus and Alertmanager gets the same rules, routes, receivers and
inhibitions that opsplane evaluates itself: `opsplane export prometheus DIR` writes
`DIR/rules/opsplane.rules.yml` (for `rule_files:`) and `DIR/alertmanager.yml`. Annotation
templates are a subset of Prometheus's template language and are written as they are.

Secrets stay out of the files: a receiver's bearer token given as `file:/path` becomes
Alertmanager's `credentials_file`; one given as `env:NAME` cannot be expressed there and is
refused with a message that says so. A webhook's `timeout` is not written: Alertmanager
0.25 (Debian 12) has no such setting and refuses the file if it is there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from opsplane.alerts.matchers import Matcher
from opsplane.alerts.models import AlertingSettings, AlertRule, Receiver, Route
from opsplane.config.models import Inventory
from opsplane.config.types import SecretRef
from opsplane.errors import UsageError

RULES_FILE = Path("rules") / "opsplane.rules.yml"
ALERTMANAGER_FILE = Path("alertmanager.yml")
GROUP_NAME = "opsplane"
HEADER = ("# Written by `opsplane export prometheus` from {source}.\n"
          "# Edit the inventory and export again rather than editing this file.\n")


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 90 -> '1m30s', 0.5 -> '500ms'."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# --- rules ----------------------------------------------------------------------------------


def rule_groups(alerting: AlertingSettings) -> dict[str, Any]:
    """The rule file: one group evaluated at the inventory's evaluation interval."""
    return {"groups": [{
        "name": GROUP_NAME,
        "interval": duration(alerting.evaluation_interval),
        "rules": [_rule(rule) for rule in alerting.rules],
    }]}


def _rule(rule: AlertRule) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_:
        out["for"] = duration(rule.for_)
    if rule.keep_firing_for:
        out["keep_firing_for"] = duration(rule.keep_firing_for)
    labels = rule.static_labels()
    labels.pop("alertname")  # Prometheus adds it from `alert`
    out["labels"] = dict(sorted(labels.items()))
    annotations = dict(rule.annotations)
    if rule.runbook:
        annotations.setdefault("runbook_url", rule.runbook)
    if annotations:
        out["annotations"] = annotations
    return out


# --- Alertmanager ---------------------------------------------------------------------------


def alertmanager_config(inventory: Inventory) -> dict[str, Any]:
    """Route tree, receivers and inhibit rules, in Alertmanager's configuration format."""
    alerting = inventory.alerting
    return {
        "route": _route(alerting.route, top=True),
        "receivers": [_receiver(name, receiver) for name, receiver in alerting.receivers.items()],
        "inhibit_rules": [*(_inhibit(rule.source_matchers, rule.target_matchers, rule.equal)
                            for rule in alerting.inhibit_rules),
                          *(dependency_inhibitions(inventory) if alerting.inhibit_dependents else [])],
    }


def _route(route: Route, *, top: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.receiver:
        out["receiver"] = route.receiver
    if route.matchers and not top:
        out["matchers"] = [str(m) for m in route.matchers]
    if route.group_by is not None:
        out["group_by"] = list(route.group_by)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(route, key)
        if value is not None:
            out[key] = duration(value)
    if route.continue_:
        out["continue"] = True
    if route.routes:
        out["routes"] = [_route(child) for child in route.routes]
    return out


def _receiver(name: str, receiver: Receiver) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    webhook = receiver.webhook
    if webhook is None:
        return out  # opsplane writes these to its event log; Alertmanager has nothing to send
    config: dict[str, Any] = {"url": webhook.url, "send_resolved": receiver.send_resolved,
                              "http_config": {"follow_redirects": False}}
    if webhook.bearer_token is not None:
        config["http_config"]["authorization"] = {
            "type": "Bearer", "credentials_file": _secret_file(name, webhook.bearer_token)}
    out["webhook_configs"] = [config]
    return out


def _secret_file(receiver: str, secret: str) -> str:
    scheme, _, target = SecretRef(secret).partition(":")
    if scheme != "file":
        raise UsageError(
            f"alerting.receivers.{receiver}.webhook.bearer_token is {secret}: Alertmanager reads "
            "credentials only from files, so use a file: reference to export this receiver")
    return target


def _inhibit(sources: Iterable[Matcher], targets: Iterable[Matcher], equal: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"source_matchers": [str(m) for m in sources],
                           "target_matchers": [str(m) for m in targets]}
    if equal:
        out["equal"] = list(equal)
    return out


def dependency_inhibitions(inventory: Inventory) -> list[dict[str, Any]]:
    """For each component others depend on (directly or not): its alerts mute theirs."""
    graph = {name: list(component.depends_on) for _, name, component in inventory.components()}
    dependents: dict[str, set[str]] = {}
    for name in graph:
        stack, seen = list(graph[name]), set()
        while stack:
            dependency = stack.pop()
            if dependency in seen or dependency == name:
                continue
            seen.add(dependency)
            dependents.setdefault(dependency, set()).add(name)
            stack.extend(graph.get(dependency, []))
    rules = []
    for dependency in graph:  # file order, so the output is stable
        if dependency in dependents:
            names = "|".join(sorted(dependents[dependency]))
            rules.append({"source_matchers": [f'service="{dependency}"'],
                          "target_matchers": [f'service=~"{names}"']})
    return rules


# --- writing --------------------------------------------------------------------------------


def write(inventory: Inventory, directory: Path, *, source: str = "opsplane.yaml") -> list[Path]:
    """Write the rule file and alertmanager.yml under `directory`; the paths written."""
    files = {
        directory / RULES_FILE: rule_groups(inventory.alerting),
        directory / ALERTMANAGER_FILE: alertmanager_config(inventory),
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
        path.write_text(HEADER.format(source=source) + text)
    return list(files)
