"""One alerting cycle over the store: evaluate rules, keep state, mute, notify receivers.

`Alerting.run_once` is what the control plane calls every `evaluation_interval` (from a
worker thread: it reads and writes the store and may POST to webhooks). Every receiver
writes its notifications to the event log; one with `channels` queues each in the outbox for
them (Slack, PagerDuty, e-mail...: docs/notifications.md), in the same transaction; one with
a webhook also POSTs them in Alertmanager's webhook format, so tools that accept
Alertmanager's notifications accept opsplane's. A notification whose webhook fails is not
entered in the notification log, so it is tried again at the next cycle; one that succeeded
is never sent twice, even across a restart.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from opsplane.alerts import evaluations, service
from opsplane.alerts.inhibition import inhibitions
from opsplane.alerts.intake import AlertInbox, IntakeCycle, ReceivedAlert, follow
from opsplane.alerts.messages import outbox_message
from opsplane.alerts.models import AlertingSettings, AlertRule, Receiver, WebhookReceiver
from opsplane.alerts.pack import effective_rules
from opsplane.alerts.routing import Muted, Notification, build_tree, due_notifications, mute, owed_resolutions
from opsplane.alerts.silences import Silence
from opsplane.alerts.state import RULE_SOURCE, Alert, AlertState, Evaluate, EvaluationCycle, evaluate_rules
from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.config.types import SecretRef
from opsplane.errors import SecretError
from opsplane.incidents.flows import follow_alerts
from opsplane.incidents.models import IncidentsSettings
from opsplane.notify import service as notify
from opsplane.notify.models import ChannelsSettings
from opsplane.store import Store
from opsplane.units import format_value

NEVER = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"
# Received alerts the store refused whose drop was recorded: a sender sends each again every
# minute, and the event log says it once.
_REFUSED_REMEMBERED = 1000
log = logging.getLogger(__name__)


def dependencies(inventory: Inventory) -> dict[str, list[str]]:
    """Each component's `depends_on`, the default inhibition graph."""
    return {name: list(component.depends_on) for _, name, component in inventory.components()}


@dataclass
class CycleReport:
    """What one cycle did: the evaluation, what was muted, sent and not delivered."""

    evaluation: EvaluationCycle
    muted: Muted
    sent: list[Notification] = field(default_factory=list)
    failed: list[tuple[Notification, str]] = field(default_factory=list)
    queued: int = 0  # messages queued in the outbox for receivers' channels
    # received alerts the store refused, dropped (alert.intake_dropped), with the reason
    refused: list[tuple[ReceivedAlert, str]] = field(default_factory=list)


class Alerting:
    """Alert rules, their state and their notifications, carried from cycle to cycle."""

    def __init__(
        self,
        settings: AlertingSettings,
        *,
        store: Store,
        evaluate: Evaluate,
        clock: Clock,
        depends_on: Mapping[str, Sequence[str]] | None = None,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        inbox: AlertInbox | None = None,
        incidents: IncidentsSettings | None = None,
        channels: ChannelsSettings | None = None,
        generated_rules: Sequence[AlertRule] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.evaluate = evaluate
        self.clock = clock
        self.depends_on = depends_on if settings.inhibit_dependents else None
        self.environ = os.environ if environ is None else environ
        self.tree = build_tree(settings.route)
        self.send_resolved = {name: r.send_resolved for name, r in settings.receivers.items()}
        self.rules = effective_rules(settings, generated_rules)
        self._transport = transport
        self.inbox = inbox  # alerts received through the API (a Prometheus's), if any
        self.incidents = incidents  # firing alerts open or join incidents when given
        self.channels = channels  # where receivers' `channels` are defined (the outbox's)
        # The last error of each failing rule and undelivered group, so that a failure that
        # persists is one event when it starts and one when it ends, not one per cycle.
        self._rule_errors: dict[str, str] = {}
        self._delivery_errors: dict[tuple[str, str], str] = {}
        with store.session() as session:
            self.alerts: list[Alert] = service.get_all(session)
            self.log = service.get_notification_log(session)
        # The alerts as the store holds them: a cycle writes only what differs (see
        # service.save_changes), so a thousand steady firing alerts cost no writes.
        self._stored = {alert.fingerprint: alert for alert in self.alerts}
        self._refused_recorded: set[str] = set()
        if inbox is not None:  # kept from an earlier run; whoever sent them sends them again
            inbox.hold((a.fingerprint for a in self.alerts if a.source != RULE_SOURCE), {})
        self.started_at = clock.now()

    def run_once(self) -> CycleReport:
        now = self.clock.now()
        own = [a for a in self.alerts if a.source == RULE_SOURCE]
        previous = [a for a in self.alerts if a.source != RULE_SOURCE]
        received = self.inbox.take() if self.inbox is not None else []
        refused: list[tuple[ReceivedAlert, str]] = []
        # A resolved alert is kept until every receiver told it fired has been sent its resolution.
        owed = owed_resolutions(self.alerts, tree=self.tree, sent=self.log, send_resolved=self.send_resolved)
        try:
            evaluation = evaluate_rules(self.rules, self.evaluate, own, now, owed)
            # Received alerts join the rules' here, so silences, inhibition, maintenance,
            # routing and the notification log treat both alike.
            intake = follow(previous, received, now, owed)
            try:
                silences = self._keep(evaluation, intake, now)
                kept = True
            except Exception:
                if not received:
                    raise
                kept = False
            if not kept:
                # Perhaps the store refuses something a sender sent: keep the rules' alerts,
                # then each received alert on its own (raises if the store refuses them all).
                intake, silences, refused = self._keep_apart(evaluation, previous, received, now, owed)
        except BaseException:
            if self.inbox is not None:  # nothing was kept: the next cycle takes them again
                self.inbox.give_back(received)
            raise
        evaluation.alerts.extend(intake.alerts)
        evaluation.transitions.extend(intake.transitions)
        evaluation.dropped.extend(intake.dropped)
        self.alerts = evaluation.alerts
        if self.inbox is not None:
            self.inbox.hold((a.fingerprint for a in intake.alerts), intake.senders)
        inhibited = inhibitions(evaluation.alerts, self.settings.inhibit_rules, self.depends_on, now=now,
                                hold=self.settings.inhibit_dependents_hold,
                                more_severe=self.settings.inhibit_dependents_more_severe)
        muted = mute(evaluation.alerts, silences=silences, inhibited=inhibited, now=now,
                     windows=self.settings.maintenance_windows)
        if self.incidents is not None:
            follow_alerts(self.store, evaluation.alerts, muted=muted, now=now, settings=self.incidents)
        due = due_notifications(
            evaluation.alerts, tree=self.tree, sent=self.log, now=now, muted=muted,
            send_resolved=self.send_resolved,
        )
        report = CycleReport(evaluation, muted, refused=refused)
        for notification in due:
            self._notify(notification, now, report)
        return report

    def _keep(self, evaluation: EvaluationCycle, intake: IntakeCycle, now: datetime) -> list[Silence]:
        """Store the cycle's alerts and changes in one transaction; the silences in force."""
        alerts = [*evaluation.alerts, *intake.alerts]
        with self.store.session() as session:
            held = service.save_changes(session, stored=self._stored, alerts=alerts,
                                        dropped=[*evaluation.dropped, *intake.dropped], now=now)
            service.record_transitions(session, transitions=[*evaluation.transitions, *intake.transitions],
                                       at=now, senders=intake.senders)
            self._record_cycle(session, evaluation, now)
            silences = service.get_silences(session, now=now)
        # committed: this is what the store holds, and where the next cycle starts
        self._stored, self.alerts, self._rule_errors = held, alerts, dict(evaluation.errors)
        return silences

    def _keep_apart(
        self, evaluation: EvaluationCycle, previous: list[Alert], received: list[ReceivedAlert],
        now: datetime, owed: Container[str],
    ) -> tuple[IntakeCycle, list[Silence], list[tuple[ReceivedAlert, str]]]:
        """`_keep` when writing everything at once failed: the rules' alerts and the received
        ones kept from earlier cycles first (if the store refuses those too, the failure is
        not the new alerts': it raises), then each received alert in a transaction of its
        own. One the store refuses is dropped (the sender sends it again if it still fires)
        and recorded; the others are kept. Returns what was kept and what was refused."""
        log.info("the store refused the cycle's writes; keeping the rules' alerts, then its %d "
                 "received alerts one by one", len(received))
        intake = follow(previous, [], now, owed)
        silences = self._keep(evaluation, intake, now)
        refused = []
        for item in received:
            step = follow(intake.alerts, [item], now, owed)
            try:
                with self.store.session() as session:
                    held = service.save_changes(session, stored=self._stored, alerts=step.alerts,
                                                dropped=step.dropped, now=now)
                    service.record_transitions(session, transitions=step.transitions, at=now,
                                               senders=step.senders)
            except Exception as exc:
                refused.append((item, _reason(exc)))
                continue
            self._stored, self.alerts = held, [*evaluation.alerts, *step.alerts]
            intake.alerts, intake.dropped = step.alerts, [*intake.dropped, *step.dropped]
            intake.transitions.extend(step.transitions)
            intake.senders.update(step.senders)
        for item, reason in refused:
            log.warning("dropped received alert %s from %s, which the store refuses: %s",
                        item.labels.get("alertname"), item.sender, reason)
            self._record_refused(item, reason, now)
        return intake, silences, refused

    def _record_cycle(self, session: Session, evaluation: EvaluationCycle, now: datetime) -> None:
        for rule, error in evaluation.errors.items():
            if self._rule_errors.get(rule) != error:
                service.record_rule_error(session, rule=rule, error=error, at=now)
        for rule in set(self._rule_errors) - set(evaluation.errors):
            service.record_rule_error(session, rule=rule, error=None, at=now)
        evaluations.record(session, self.evaluation(now, errors=evaluation.errors))

    def _record_refused(self, item: ReceivedAlert, reason: str, now: datetime) -> None:
        """`alert.intake_dropped`, once for each alert as sent (a sender sends it again every
        minute); logged when the store refuses even that."""
        key = item.content_key()
        if key in self._refused_recorded:
            return
        try:
            with self.store.session() as session:
                service.record_intake_dropped(session, alert=item, error=reason, at=now)
        except Exception as exc:
            log.warning("could not record the received alert %s dropped: %s", item.labels.get("alertname"),
                        _reason(exc))
            return
        if len(self._refused_recorded) >= _REFUSED_REMEMBERED:
            self._refused_recorded.clear()
        self._refused_recorded.add(key)

    def evaluation(self, now: datetime, *, errors: Mapping[str, str] | None = None) -> evaluations.Evaluation:
        """This evaluator's cycle at `now`, as `opsplane alerts` reads it from the store."""
        return evaluations.by_this_process(now=now, interval=self.settings.evaluation_interval,
                                       started_at=self.started_at, rules=len(self.rules),
                                       failing=errors or ())

    def _notify(self, notification: Notification, now: datetime, report: CycleReport) -> None:
        receiver = self.settings.receivers[notification.receiver]
        error = self._post(receiver, notification)
        key = (notification.receiver, notification.group_id)
        with self.store.session() as session:
            if error is not None:
                if self._delivery_errors.get(key) != error:
                    service.record_failed_delivery(session, notification=notification, at=now, error=error)
                self._delivery_errors[key] = error
                report.failed.append((notification, error))
                return
            self._delivery_errors.pop(key, None)
            if receiver.channels and self.channels is not None:
                # In the transaction that logs the notification: queued if and only if logged.
                message = outbox_message(notification, previous=self.log.get(key))
                notify.enqueue(session, notification=message, channels=receiver.channels,
                               settings=self.channels, now=now)
                report.queued += len(receiver.channels)
            webhook = receiver.webhook.url if receiver.webhook else None
            sent = service.record_notification(session, notification=notification, at=now, webhook=webhook)
        self.log[key] = sent
        report.sent.append(notification)

    def _post(self, receiver: Receiver, notification: Notification) -> str | None:
        """POST to the receiver's webhook; the reason when it failed, None when delivered."""
        if receiver.webhook is None:
            return None
        try:
            headers = _headers(receiver.webhook, self.environ)
        except SecretError as exc:
            return str(exc)
        payload = webhook_payload(notification)
        try:
            with httpx.Client(timeout=receiver.webhook.timeout, transport=self._transport) as client:
                response = client.post(receiver.webhook.url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            return f"webhook {receiver.webhook.url} unreachable: {exc}"
        if response.status_code >= 300:
            return f"webhook {receiver.webhook.url} answered {response.status_code}"
        return None


def _reason(exc: BaseException) -> str:
    """What a store's refusal says, in a line: the database's own message (SQLAlchemy's text
    adds the statement and its parameters, which may be long and are the sender's data)."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (said[0] if said else type(exc).__name__)[:300]


def _headers(webhook: WebhookReceiver, environ: Mapping[str, str]) -> dict[str, str]:
    if webhook.bearer_token is None:
        return {}
    token = SecretRef(webhook.bearer_token).resolve(dict(environ))
    return {"Authorization": f"Bearer {token}"}


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """Alertmanager's webhook message (version 4), plus `explains`: the alerts muted because
    an alert of this notification is their root cause."""
    alerts = [*notification.firing, *notification.resolved]
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": "firing" if notification.firing else "resolved",
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": "",
        "alerts": [_alert(a) for a in alerts],
        "explains": [
            {"alert": _alert(i.target), "rootCause": _alert(i.cause), "reason": i.reason}
            for i in notification.explains
        ],
    }


def _alert(alert: Alert) -> dict[str, Any]:
    resolved = alert.state is AlertState.RESOLVED
    # A received alert started when its sender says; opsplane's own when it fired.
    started = alert.active_at if alert.source != RULE_SOURCE else alert.fired_at or alert.active_at
    return {
        "status": "resolved" if resolved else "firing",
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _time(started),
        "endsAt": _time(alert.resolved_at) if resolved and alert.resolved_at else NEVER,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
        # beyond Alertmanager's format: the value, exact (null when there is none) and as read
        "value": alert.value if math.isfinite(alert.value) else None,
        "unit": alert.unit,
        "valueText": format_value(alert.value, alert.unit),
    }


def _time(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _common(mappings: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    first, *rest = mappings
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
