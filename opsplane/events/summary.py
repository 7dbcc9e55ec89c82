"""Events in the operator's words: one line for each kind of event the log holds.

The dashboard's event list, an incident's timeline and `opsplane events` show an event as
`describe` writes it. Each kind has its own sentence; what is nested in the details (labels,
the alerts of a notification, people on call) is written as people write it
(`env=production, service=orders`), never as Python prints it, and values in a unit are
written in it (1.9%, 512 ms). A kind without a sentence of its own is written from its
details the same way, so a new kind reads well before it gets one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from opsplane.events.summary_audit import describers as audit_describers
from opsplane.events.summary_backup import describers as backup_describers
from opsplane.events.summary_cache import describers as cache_describers
from opsplane.events.summary_db import describers as db_describers
from opsplane.events.summary_deps import describers as deps_describers
from opsplane.events.summary_gameday import describers as gameday_describers
from opsplane.events.summary_reports import describers as report_describers
from opsplane.events.summary_runbook import describers as runbook_describers
from opsplane.events.summary_slo import describers as slo_describers
from opsplane.events.words import text
from opsplane.timefmt import span_words
from opsplane.units import format_value


class EventLike(Protocol):
    kind: str
    target: str
    service: str | None
    outcome: str
    details: dict[str, Any]


Describer = Callable[[str, str | None, str, Mapping[str, Any]], str]
"""(target, service, outcome, details) -> the sentence."""

_LISTED = 3  # alerts named in a notification's line; the rest are counted
_RULE_ID = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\{(?P<labels>.*)\}$")
_RULE_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def describe(event: EventLike) -> str:
    """One line about `event`, in the words of the operator."""
    return summarise(event.kind, event.details, target=event.target, service=event.service,
                     outcome=event.outcome)


def summarise(kind: str, details: Mapping[str, Any], *, target: str = "", service: str | None = None,
              outcome: str = "") -> str:
    """One line about an event of `kind` with these `details`."""
    details = details if isinstance(details, Mapping) else {}
    writer = DESCRIBERS.get(kind)
    if writer is not None:
        return writer(target, service, outcome, details)
    said = pairs(details)
    if not target:
        return said or outcome
    return f"{kind} {target}: {outcome}" + (f"; {said}" if said else "")


# --- writing nested details ---------------------------------------------------------------------


def pairs(details: Mapping[str, Any], *, leave_out: Sequence[str] = ()) -> str:
    """The details as `key: value` pairs, empty values and `leave_out` keys left out."""
    shown = [(key, text(value)) for key, value in details.items() if key not in leave_out]
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in shown if value)


def labels_text(labels: Any, *, leave_out: Sequence[str] = ("alertname", "severity")) -> str:
    """An alert's labels as `env=production, service=orders`, without name and severity."""
    if not isinstance(labels, Mapping):
        return text(labels)
    return text({k: v for k, v in sorted(labels.items()) if k not in leave_out})


def rule_text(rule_id: str) -> str:
    """A rule's identity `HighCpu{severity="P1"}` as `HighCpu (severity=P1)`."""
    match = _RULE_ID.match(rule_id)
    if not match:
        return rule_id
    found = ", ".join(f"{k}={v}" for k, v in _RULE_LABEL.findall(match.group("labels")))
    return f"{match['name']} ({found})" if found else match["name"]


def _time(value: Any) -> str:
    """An ISO time as `2026-11-24 10:05:00 UTC`; anything else as text."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        except ValueError:
            return value
    return text(value)


def _d(details: Mapping[str, Any], key: str, default: str = "") -> str:
    return text(details.get(key)) or default


# --- alerting -------------------------------------------------------------------------------------

_ALERT_WORDS = {"alert.pending": "pending", "alert.firing": "firing", "alert.resolved": "resolved",
                "alert.inactive": "no longer pending"}


def _alert_change(kind: str) -> Describer:
    word = _ALERT_WORDS[kind]

    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        line = f"Alert {target} {word}"
        value = d.get("value")
        if kind in ("alert.pending", "alert.firing") and isinstance(value, int | float):
            unit = d.get("unit")
            line += f" at {format_value(float(value), unit if isinstance(unit, str) else None)}"
        labels = labels_text(d.get("labels"))
        if labels:
            line += f" ({labels})"
        if d.get("source"):
            sender = _d(d, "sender")
            line += f", received from {_d(d, 'source')}" + (f" ({sender})" if sender else "")
        if d.get("reason"):  # its rule was changed or removed
            return f"{line}: {_d(d, 'reason')}"
        annotations = d.get("annotations")
        summary = text(annotations.get("summary")) if isinstance(annotations, Mapping) else ""
        return f"{line}: {summary}" if summary and kind == "alert.firing" else line

    return write


def _named_alerts(items: Any) -> str:
    if not isinstance(items, Sequence) or isinstance(items, str):
        return text(items)
    names = []
    for item in items:
        if not isinstance(item, Mapping):
            names.append(text(item))
            continue
        labels = item.get("labels")
        where = text(labels.get("service")) if isinstance(labels, Mapping) else ""
        names.append(_d(item, "name", "?") + (f" ({where})" if where else ""))
    shown = ", ".join(name for name in names[:_LISTED] if name)
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _notified(failed: bool) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        parts = [f"{word} {_named_alerts(d.get(key))}" for key, word in (("firing", "firing"),
                                                                          ("resolved", "resolved"))
                 if d.get(key)]
        explains = d.get("explains")
        if isinstance(explains, Sequence) and explains and not isinstance(explains, str):
            parts.append(f"explains {len(explains)} muted alert" + ("s" if len(explains) > 1 else ""))
        head = f"Could not notify {target}" if failed else f"Notified {target}"
        line = head + (f" of {'; '.join(parts)}" if parts else "")
        return f"{line}: {_d(d, 'error')}" if failed and d.get("error") else line

    return write


def _rule_failed(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Rule {rule_text(target)} cannot be evaluated: {_d(d, 'error', 'no reason given')}"


def _rule_recovered(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Rule {rule_text(target)} evaluates again"


def _intake_dropped(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return (f"Dropped alert {target} received from {_d(d, 'sender', 'a sender')}: the store refuses it "
            f"({_d(d, 'error', 'no reason given')})")


def _silence(word: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        matchers = text(d.get("matchers")) or "?"
        line = f"Silence {_d(d, 'id', target)} {word} for {matchers}"
        if word == "created":
            line += f" until {_time(d.get('ends_at'))}, by {_d(d, 'author', '?')}"
        comment = _d(d, "comment")
        return f"{line}: {comment}" if comment else line

    return write


# --- notifications ----------------------------------------------------------------------------------


def _delivery(kind: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        channel = _d(d, "channel", target)
        what = " ".join(part for part in (_d(d, "severity"), _d(d, "status")) if part) or "notification"
        group = _d(d, "group")
        if group.startswith("incident:"):  # which incident's page, among several of a service
            what += f" for INC-{group.removeprefix('incident:')}"
        attempt = f"attempt {_d(d, 'attempt')}" if d.get("attempt") is not None else ""
        detail = _d(d, "detail")
        status = f"HTTP {_d(d, 'http_status')}" if d.get("http_status") is not None else ""
        if status and detail.startswith(status):  # the driver's detail names it already
            status = ""
        why = ": ".join(part for part in (status, detail) if part)
        if kind == "notify.delivered":
            return f"Delivered {what} to {channel}" + (f" ({attempt})" if attempt else "")
        if kind == "notify.retry":
            line = f"Delivery of {what} to {channel} failed ({', '.join(p for p in (why, attempt) if p)})"
            retry_at = d.get("next_attempt_at")
            return line + (f"; next try {_time(retry_at)}" if retry_at else "")
        if kind == "notify.withdrawn":  # an incident's page once someone took the incident
            when = f"after {attempt} failed ({why})" if attempt and why else "before it was sent"
            reason = _d(d, "reason")
            return f"Withdrew {what} to {channel} {when}" + (f": {reason}" if reason else "")
        if kind == "notify.dead":
            return f"Gave up delivering {what} to {channel}" + (f" after {attempt}" if attempt else "") + (
                f": {why}" if why else "")
        return f"Delivery of {what} to {channel} failed for good" + (f": {why}" if why else "")

    return write


def _muted(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Not sent to {_d(d, 'channel', target)}: {_d(d, 'status', 'notification')} of a muted group"


def _digest(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Digest of {_d(d, 'count', '?')} held notifications queued for {_d(d, 'channel', target)}"


# --- checks, metrics and the control plane ---------------------------------------------------------


def _check_changed(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    before = _d(d, "from", "new")  # a check's first result has no state before it
    after = _d(d, "to", outcome)
    where = f" of {service}" if service else ""
    reason = _d(d, "reason")
    line = f"Check {_d(d, 'check', target)}{where}: {before} \u2192 {after}"
    return f"{line}: {reason}" if reason else line


def _scrape(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    state, reason = _d(d, "state", outcome), _d(d, "reason")
    return f"Metrics of {target}: scrape {state.lower()}" + (f": {reason}" if reason else "")


def _lifecycle(word: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        checks = d.get("checks")
        line = f"Control plane {word}"
        if d.get("environment"):
            line += f" in {_d(d, 'environment')}"
        if not isinstance(checks, int) or isinstance(checks, bool):
            return line
        return f"{line}, {checks} check" + ("" if checks == 1 else "s")

    return write


# --- incidents -----------------------------------------------------------------------------------------


def _incident(kind: str) -> Describer:
    # Every sentence names its incident: a timeline or post-mortem also shows the events of
    # other incidents of the service, which must not read as this one's.
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        ref = target or "incident"
        if kind == "incident.opened":
            return f"{ref} opened ({_d(d, 'severity', '?')}): {_d(d, 'title')}".rstrip(": ")
        if kind == "incident.acknowledged":
            return f"{ref} acknowledged; commander {_d(d, 'commander', 'none yet')}"
        if kind in ("incident.updated", "incident.resolved"):
            word = "resolved" if kind == "incident.resolved" else f"status {_d(d, 'status', '?')}"
            return f"{ref} {word}: {_d(d, 'summary')}".rstrip(": ")
        if kind == "incident.note":
            return f"{ref} note: {_d(d, 'note')}"
        if kind == "incident.alert_joined":
            return f"Alert {_d(d, 'alert', '?')} ({_d(d, 'severity', '?')}) joined {ref}"
        if kind == "incident.severity_raised":
            raised = f"from {_d(d, 'from', '?')} to {_d(d, 'to', '?')}"
            return f"{ref} severity raised {raised} by {_d(d, 'by', '?')}"
        if kind == "incident.update_due":
            return f"{ref} status update due; reminded {_d(d, 'commander', 'nobody (no commander)')}"
        if kind == "incident.action_added":
            return f"{ref} action item: {_d(d, 'title')} (owner {_d(d, 'owner', 'none')})"
        return f"{ref} action item done: {_d(d, 'title')}"

    return write


# --- on call, people and the status page ----------------------------------------------------------------


def _oncall(kind: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        where = target.replace("/", ", layer ")
        if kind == "oncall.override":
            return (f"Override on {where}: {_d(d, 'person', '?')} on call from {_time(d.get('start'))} "
                    f"to {_time(d.get('end'))}")
        if kind == "oncall.swap":
            first, second = _time(d.get("first")), _time(d.get("second"))
            return f"Swap on {where}: the shifts of {first} and {second} traded"
        if kind == "oncall.handoff":
            on_call = text(d.get("on_call"))
            return f"Handoff note on {target}" + (f" ({on_call})" if on_call else "") + f": {_d(d, 'note')}"
        who = _d(d, "person") or _d(d, "channel") or target
        return f"Cannot page {who} for {_d(d, 'incident', '?')}: {_d(d, 'problem', 'no way to reach them')}"

    return write


def _token(word: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        return f"API token {target.removeprefix('token:')} ({_d(d, 'role', '?')}) {word}"

    return write


def _login(failed: bool) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        client = _d(d, "client", "?")
        count = d.get("count")
        if failed and isinstance(count, int) and count > 1:  # one event for a window's failures
            refused = d.get("refused")
            limited = f"; {refused} refused by the limit" if isinstance(refused, int) and refused else ""
            return (f"{count} failed sign-ins to the {target} from {client} in the last "
                    f"{_window(d.get('window_seconds'))} ({_d(d, 'reason', 'unknown token')}){limited}")
        if failed:
            return f"Sign-in to the {target} refused from {client}: {_d(d, 'reason', 'unknown token')}"
        return f"Signed in to the {target} from {client} as {_d(d, 'role', '?')}"

    return write


def _window(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds == 60:
        return "minute"
    return span_words(seconds)


def _logout(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Signed out of the {target} from {_d(d, 'client', '?')}"


def _woken(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return f"Woke the {target} worker"


def _maintenance(scheduled: bool) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        components = text(d.get("components")) or "?"
        if not scheduled:
            return f"Maintenance notice {target} for {components} cancelled"
        return (f"Maintenance notice {target} for {components} from {_time(d.get('start'))} to "
                f"{_time(d.get('end'))}: {_d(d, 'message')}").rstrip(": ")

    return write


# --- the runtime ---------------------------------------------------------------------------------


def _runtime(kind: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        name = target if "@" in target else service or target  # a track's name says its release
        instance = f"{name}.{_d(d, 'instance')}" if d.get("instance") is not None else name
        reason = _d(d, "reason")
        because = f" ({reason})" if reason else ""
        if kind == "runtime.started":
            port = f" on port {_d(d, 'port')}" if d.get("port") is not None else ""
            return f"Started {instance} (pid {_d(d, 'pid', '?')}){port}{because}"
        if kind == "runtime.restarted":
            before, after = _d(d, "previous_pid", "?"), _d(d, "pid", "?")
            return f"Restarted {instance}: pid {before} \u2192 {after}{because}"
        if kind == "runtime.exited":
            ran = d.get("ran_seconds")
            lasted = f" after {format_value(float(ran), 'seconds')}" if isinstance(ran, int | float) else ""
            then = _d(d, "then")
            return f"{instance} (pid {_d(d, 'pid', '?')}) exited{lasted}: {_d(d, 'exit', '?')}" + (
                f"; {then}" if then else "")
        if kind == "runtime.failed":
            return f"{instance} failed: {reason or 'gave up restarting'}"
        if kind == "runtime.replaced":
            return (f"Replaced {instance}: {_d(d, 'from', '?')} \u2192 {_d(d, 'to', '?')}, "
                    f"pid {_d(d, 'previous_pid', '?')} \u2192 {_d(d, 'pid', '?')}")
        if kind == "runtime.release_recorded":
            return f"{name} runs release {_d(d, 'to', '?')} from now on (was {_d(d, 'from', '-')})"
        if kind == "runtime.scaled":
            return f"Scaled {name} from {_d(d, 'from', '?')} to {_d(d, 'to', '?')} instances"
        if kind == "runtime.adopted":
            previous = _d(d, "previous_supervisor", "?")
            count = d.get("instances")
            running = ("1 running instance, pid" if count == 1
                       else f"{_d(d, 'instances', '?')} running instances, pids")
            return (f"Adopted {name} ({running} {text(d.get('pids'))}) from supervisor {previous}, "
                    "which was gone")
        pids = text(d.get("pids"))
        return f"Stopped {name} ({_d(d, 'instances', '?')} instances" + (f", pids {pids}" if pids else "") + (
            f"){because}")

    return write


# --- deploys -------------------------------------------------------------------------------------


_DEPLOY_STATES = {"succeeded": "succeeded", "rolled_back": "was rolled back", "failed": "failed",
                  "aborted": "was aborted", "awaiting_approval": "awaits approval"}


def _deploy(kind: str) -> Describer:
    def write(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        deploy = f"Deploy {_d(d, 'deploy', '?')} of {service or '?'} {_d(d, 'to', '?')}"
        reason = _d(d, "reason")
        because = f": {reason}" if reason else ""
        if kind == "deploy.requested":
            override = d.get("override")
            overridden = f"; window overridden: {text(override)}" if override else ""
            steps = f"{_d(d, 'steps', '?')} step{'' if d.get('steps') == 1 else 's'}"
            return (f"{deploy} asked for: {_d(d, 'strategy', '?')} from {_d(d, 'from', '?')} in "
                    f"{_d(d, 'environment', '?')}, {steps}{overridden}")
        if kind == "deploy.approved":
            return f"{deploy} approved ({_d(d, 'approvals', '?')} of {_d(d, 'needed', '?')})"
        if kind == "deploy.step":
            extra = {k: v for k, v in d.items() if k not in ("deploy", "to", "step", "kind")}
            said = pairs(extra)
            done = f"{deploy}: step {_d(d, 'step', '?')} {_d(d, 'kind', '?')} done"
            return done + (f" ({said})" if said else "")
        if kind == "deploy.verdict":
            return (f"{deploy}: analysis at {_d(d, 'percent', '?')} % says {outcome}"
                    + (f": {_d(d, 'explanation')}" if d.get("explanation") else ""))
        state = kind.removeprefix("deploy.")
        return f"{deploy} {_DEPLOY_STATES.get(state, 'is ' + state.replace('_', ' '))}{because}"

    return write


DESCRIBERS: dict[str, Describer] = {
    **{kind: _alert_change(kind) for kind in _ALERT_WORDS},
    "alert.notified": _notified(failed=False),
    "alert.notify_failed": _notified(failed=True),
    "alert.rule_failed": _rule_failed,
    "alert.rule_recovered": _rule_recovered,
    "alert.intake_dropped": _intake_dropped,
    "silence.created": _silence("created"),
    "silence.expired": _silence("expired"),
    **{f"notify.{outcome}": _delivery(f"notify.{outcome}")
       for outcome in ("delivered", "retry", "failed", "dead", "withdrawn")},
    "notify.muted": _muted,
    "notify.digest": _digest,
    "check.state_changed": _check_changed,
    "metrics.scrape": _scrape,
    "control_plane.started": _lifecycle("started"),
    "control_plane.stopped": _lifecycle("stopped"),
    "worker.woken": _woken,
    **{kind: _incident(kind) for kind in (
        "incident.opened", "incident.acknowledged", "incident.updated", "incident.resolved", "incident.note",
        "incident.alert_joined", "incident.severity_raised", "incident.update_due", "incident.action_added",
        "incident.action_done")},
    **{kind: _oncall(kind)
       for kind in ("oncall.override", "oncall.swap", "oncall.handoff", "oncall.unreachable")},
    "token.created": _token("created"),
    "token.revoked": _token("revoked"),
    "ui.login": _login(failed=False),
    "ui.login_failed": _login(failed=True),
    "ui.logout": _logout,
    "maintenance.notice_scheduled": _maintenance(scheduled=True),
    "maintenance.notice_cancelled": _maintenance(scheduled=False),
    **{kind: _runtime(kind) for kind in (
        "runtime.started", "runtime.restarted", "runtime.exited", "runtime.failed", "runtime.scaled",
        "runtime.stopped", "runtime.adopted", "runtime.replaced", "runtime.release_recorded")},
    **{kind: _deploy(kind) for kind in (
        "deploy.requested", "deploy.approved", "deploy.step", "deploy.verdict", "deploy.queued",
        "deploy.running", "deploy.paused", "deploy.rolling_back", "deploy.succeeded", "deploy.rolled_back",
        "deploy.failed", "deploy.aborted")},
    **backup_describers(),
    **runbook_describers(),
    **slo_describers(),
    **gameday_describers(),
    **report_describers(),
    **deps_describers(),
    **cache_describers(),
    **db_describers(),
    **audit_describers(),
}
"""The sentence of each kind of event opsplane records."""
