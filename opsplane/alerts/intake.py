"""Alerts received from a Prometheus, through Alertmanager's API (`POST /api/v2/alerts`).

Prometheus sends each firing alert with `endsAt` set a few resend intervals ahead and sends
it again every resend interval (one minute by default); a resolved alert is sent once more
with `endsAt` at the moment it resolved. The semantics are Alertmanager's:

- an alert's identity is its labels;
- it fires while its `endsAt` is in the future; one that is not sent again before then
  resolves by itself, at its `endsAt` (so a Prometheus that dies does not leave alerts
  firing forever); one sent without `endsAt` ends RESOLVE_TIMEOUT after it was received,
  unless sent again, as Alertmanager's `resolve_timeout`;
- one sent with `endsAt` at or before the moment it arrives is resolved.

The sender's `severity` is kept as opsplane's when it is one of P0-P3; Prometheus's usual
critical / warning / info become P1 / P2 / P3 and anything else (or none) P2, with the
sender's own value kept in `original_severity`, so routes, inhibition rules and silences
written against opsplane's severities apply to received alerts as to opsplane's own.

Every alert is bounded (`IntakeSettings`, docs/alerting.md "Limits"): labels are its
identity, so one whose labels are too many or too long is refused; annotations and the
generator URL are text for people, cut with a marker. A request's alerts are read one by one
(`read_alerts`): the valid ones are kept even when others are refused, as Alertmanager does,
so that one bad alert in a Prometheus's batch does not hold back the rest at every re-send.

Parsing (`read_alerts`, `parse_alerts`) and following the alerts from cycle to cycle
(`follow`) are pure; `AlertInbox` is where the API hands received alerts to the alerting
cycle, which runs in another thread, and where each sender's alerts are counted.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opsplane.alerts.models import IntakeSettings
from opsplane.alerts.state import Alert, AlertState, Transition, fingerprint, may_forget
from opsplane.clock import Clock

SOURCE = "prometheus"
RESOLVE_TIMEOUT = timedelta(minutes=5)
MAX_ALERTS = 10_000  # per request; Prometheus sends at most 64 (its max batch size)
ORIGINAL_SEVERITY = "original_severity"
DEFAULT_SEVERITY = "P2"
SEVERITIES = {"P0", "P1", "P2", "P3"}
_PROMETHEUS_SEVERITIES = {"critical": "P1", "error": "P1", "warning": "P2", "warn": "P2",
                          "info": "P3", "none": "P3"}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Go's zero time, which Prometheus writes for "not set"
_UNSET_BEFORE = datetime(1971, 1, 1, tzinfo=UTC)
_EXAMPLE = "2026-01-06T10:00:00Z"
DEFAULT_LIMITS = IntakeSettings()
_SHOWN = 40  # characters of a refused name a message repeats


class IntakeError(ValueError):
    """A request body that is not a list of alerts; the message says where and why."""


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert as a sender posted it, with opsplane's severity and its absolute end."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    generator_url: str
    received_at: datetime
    sender: str

    @property
    def resolved(self) -> bool:
        """Sent as already over (Prometheus's "resolved"), not merely ending later."""
        return self.ends_at <= self.received_at

    def content_key(self) -> str:
        """The alert as sent, apart from its times: the same for each re-send of it."""
        said = json.dumps([self.labels, self.annotations, self.generator_url], sort_keys=True)
        return hashlib.sha256(said.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Reading:
    """A request's alerts: those to keep, and where and why each of the others was refused."""

    alerts: list[ReceivedAlert]
    problems: list[str]


def severity_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """`labels` with `severity` one of P0-P3: kept when it is one, else mapped (critical P1,
    warning P2, info P3, anything else or none P2) with the sender's value kept in
    `original_severity`."""
    result = dict(labels)
    given = result.get("severity", "")
    if given in SEVERITIES:
        return result
    if given.upper() in SEVERITIES:
        result["severity"] = given.upper()
    else:
        result["severity"] = _PROMETHEUS_SEVERITIES.get(given.lower(), DEFAULT_SEVERITY)
    if given:
        result.setdefault(ORIGINAL_SEVERITY, given)
    return result


def intake_fingerprint(labels: Mapping[str, str], source: str = SOURCE) -> str:
    """A received alert's identity: its labels, kept apart from an alert of opsplane's own
    rules that happens to carry the same labels (say, a rule exported to that Prometheus)."""
    return fingerprint({**labels, "__source__": source})


def read_alerts(body: Any, *, now: datetime, sender: str,
                limits: IntakeSettings = DEFAULT_LIMITS) -> Reading:
    """The alerts of a decoded JSON body (a list of `{labels, annotations, startsAt, endsAt,
    generatorURL}`), each read on its own: the valid ones, and a problem (where and why) for
    each other. IntakeError when the body is no list of alerts at all."""
    if not isinstance(body, list):
        raise IntakeError(f"the body must be a JSON list of alerts, not {_kind(body)}")
    if len(body) > MAX_ALERTS:
        raise IntakeError(f"at most {MAX_ALERTS} alerts per request, got {len(body)}")
    reading = Reading([], [])
    for index, item in enumerate(body):
        try:
            reading.alerts.append(_parse_one(item, f"alerts[{index}]", now=now, sender=sender, limits=limits))
        except IntakeError as exc:
            reading.problems.append(str(exc))
    return reading


def parse_alerts(body: Any, *, now: datetime, sender: str,
                 limits: IntakeSettings = DEFAULT_LIMITS) -> list[ReceivedAlert]:
    """`read_alerts` for a body that must be valid as a whole: IntakeError naming the first
    problem and where it is."""
    reading = read_alerts(body, now=now, sender=sender, limits=limits)
    if reading.problems:
        raise IntakeError(reading.problems[0])
    return reading.alerts


def _parse_one(item: Any, where: str, *, now: datetime, sender: str, limits: IntakeSettings) -> ReceivedAlert:
    if not isinstance(item, dict):
        raise IntakeError(f"{where} must be an object, not {_kind(item)}")
    unknown = set(item) - {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    if unknown:
        raise IntakeError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    labels = _label_set(item.get("labels"), f"{where}.labels", required=True, limits=limits)
    if not labels.get("alertname"):
        raise IntakeError(f"{where}.labels must have a non-empty alertname")
    annotations = {name: _text(text, limits.max_annotation_length) for name, text in _label_set(
        item.get("annotations", {}), f"{where}.annotations", required=False, limits=limits).items()}
    starts_at = _time(item.get("startsAt"), f"{where}.startsAt")
    ends_at = _time(item.get("endsAt"), f"{where}.endsAt")
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        raise IntakeError(f"{where}.endsAt is before its startsAt")
    generator_url = item.get("generatorURL", "")
    if not isinstance(generator_url, str):
        raise IntakeError(f"{where}.generatorURL must be a string, not {_kind(generator_url)}")
    labels = severity_labels(labels)
    return ReceivedAlert(
        fingerprint=intake_fingerprint(labels), labels=labels, annotations=annotations,
        starts_at=min(starts_at or now, now), ends_at=ends_at or now + RESOLVE_TIMEOUT,
        generator_url=_text(generator_url, limits.max_annotation_length), received_at=now, sender=sender,
    )


def _label_set(value: Any, where: str, *, required: bool, limits: IntakeSettings) -> dict[str, str]:
    """Labels (`required`) or annotations: names as Prometheus's, at most `max_labels` of them;
    a label's value within `max_label_value_length` and storable (an annotation's is cut and
    cleaned later, by `_text`)."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise IntakeError(f"{where} must be an object of strings, not {_kind(value)}")
    if required and not value:
        raise IntakeError(f"{where} must not be empty")
    if len(value) > limits.max_labels:
        raise IntakeError(f"{where} has {len(value):,} entries, at most {limits.max_labels} "
                          "(alerting.intake.max_labels)")
    for name, text in value.items():
        if len(name) > limits.max_label_name_length:
            raise IntakeError(f"{where}: the name {name[:_SHOWN]!r}... is {len(name):,} characters long, at "
                              f"most {limits.max_label_name_length} (alerting.intake.max_label_name_length)")
        if not _LABEL_NAME.fullmatch(name):
            raise IntakeError(f"{where}: {name[:_SHOWN]!r} is not a valid label name "
                              "([a-zA-Z_][a-zA-Z0-9_]*)")
        if not isinstance(text, str):
            raise IntakeError(f"{where}.{name} must be a string, not {_kind(text)}")
        if not required:
            continue
        if len(text) > limits.max_label_value_length:
            raise IntakeError(f"{where}.{name} is {len(text):,} characters long, at most "
                              f"{limits.max_label_value_length:,} (alerting.intake.max_label_value_length)")
        if not _storable(text):
            raise IntakeError(f"{where}.{name} holds a NUL character or an unpaired surrogate (\\u0000, "
                              "\\ud800...), which no store keeps")
    return {name: text for name, text in value.items() if text != ""}


def _storable(text: str) -> bool:
    """Text a store can keep: UTF-8 without NUL (PostgreSQL refuses both in text and JSON)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(text: str, limit: int) -> str:
    """Text for people, storable (NUL and unpaired surrogates replaced) and at most `limit`
    characters: a longer one is cut, ending in a marker that says how long it was."""
    if not _storable(text):
        text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if len(text) <= limit:
        return text
    marker = f" … [cut from {len(text):,} characters]"
    return text[: limit - len(marker)] + marker


def _time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time; None when absent, null or Go's zero time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IntakeError(f"{where} must be an RFC 3339 time such as {_EXAMPLE}, not {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise IntakeError(f"{where}: {value!r} is not an RFC 3339 time such as {_EXAMPLE}") from None
    if parsed.tzinfo is None:
        raise IntakeError(f"{where}: {value!r} has no time zone (end it with Z or +00:00)")
    return None if parsed < _UNSET_BEFORE else parsed


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- from cycle to cycle ---------------------------------------------------------------------


@dataclass
class IntakeCycle:
    """The received alerts after one cycle, their changes of state and who sent what."""

    alerts: list[Alert] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    senders: dict[str, str] = field(default_factory=dict)


def follow(previous: Iterable[Alert], received: Sequence[ReceivedAlert], now: datetime,
           owed: Container[str] = frozenset()) -> IntakeCycle:
    """The received alerts at `now`, from those kept after the last cycle and what arrived
    since (oldest first): new ones fire, known ones are refreshed, those whose end has come
    resolve, and resolved ones are forgotten as the rules' are (`state.may_forget`; `owed`:
    those whose resolution a receiver still waits for)."""
    before = {alert.fingerprint: alert for alert in previous}
    current: dict[str, Alert] = dict(before)
    cycle = IntakeCycle()
    for item in received:
        updated = _receive(current.get(item.fingerprint), item, now)
        if updated is not None:
            current[item.fingerprint] = updated
            cycle.senders[item.fingerprint] = item.sender
    for key, alert in current.items():
        after = _at(alert, now, owed)
        if after is None:
            cycle.dropped.append(key)
            continue
        cycle.alerts.append(after)
        _note(cycle.transitions, before.get(key), after)
    return cycle


def _receive(before: Alert | None, item: ReceivedAlert, now: datetime) -> Alert | None:
    """The alert once `item` arrived; None when it changes nothing (a resolve of an alert
    that is not firing)."""
    if before is not None and before.state is AlertState.FIRING:
        if item.ends_at <= now:
            return replace(before, state=AlertState.RESOLVED, resolved_at=min(item.ends_at, now),
                           ends_at=item.ends_at, last_seen_at=now, annotations=dict(item.annotations))
        return replace(before, annotations=dict(item.annotations), ends_at=item.ends_at, last_seen_at=now,
                       generator_url=item.generator_url)
    if item.ends_at <= now:
        return None
    # New, or firing again after it resolved: a new alert, which the routing tree sees
    # fire now (its group_wait counts from here, as in Alertmanager); it started when the
    # sender says.
    return Alert(
        fingerprint=item.fingerprint, rule=SOURCE, labels=dict(item.labels), state=AlertState.FIRING,
        value=math.nan, annotations=dict(item.annotations), active_at=item.starts_at, last_seen_at=now,
        fired_at=now, ends_at=item.ends_at, source=SOURCE, generator_url=item.generator_url,
    )


def _at(alert: Alert, now: datetime, owed: Container[str]) -> Alert | None:
    """The alert as time passes: it resolves at its end; None once it is to be forgotten."""
    if alert.state is AlertState.FIRING and alert.ends_at is not None and alert.ends_at <= now:
        return replace(alert, state=AlertState.RESOLVED, resolved_at=alert.ends_at, last_seen_at=now)
    # Kept from when opsplane saw it resolve: an end long past (serve was down) must still
    # be notified before the alert is forgotten.
    if alert.state is AlertState.RESOLVED and may_forget(alert.last_seen_at, now,
                                                          owed=alert.fingerprint in owed):
        return None
    return alert


def _note(transitions: list[Transition], before: Alert | None, after: Alert) -> None:
    was = AlertState.INACTIVE if before is None else before.state
    new = before is not None and before.fired_at != after.fired_at
    if was is not after.state or new:
        transitions.append(Transition(after, AlertState.INACTIVE if new else was, after.state))


# --- between the API and the cycle -----------------------------------------------------------


class AlertInbox:
    """Received alerts waiting for the next alerting cycle, latest per alert. The API puts
    (event loop), the cycle takes (worker thread); a cycle that fails gives them back.

    It also bounds what each sender makes opsplane hold: the alerts the last cycle kept
    (`hold`) and those waiting, counted by sender; a new alert of a sender that has
    `max_per_sender` of them is refused. Alerts already held are always taken (a re-send, a
    resolve), whoever sends them: two Prometheus servers of a pair send the same alerts."""

    def __init__(self, clock: Clock, *, max_per_sender: int = DEFAULT_LIMITS.max_alerts_per_sender) -> None:
        self.clock = clock
        self.max_per_sender = max_per_sender
        self._lock = threading.Lock()
        self._waiting: dict[str, ReceivedAlert] = {}
        self._held: dict[str, str] = {}  # fingerprint -> sender ("" when unknown) of kept alerts
        self._taken: dict[str, str] = {}  # the same, of what the running cycle took

    def put(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert]:
        """Queue `alerts` for the next cycle; those refused because their sender holds
        `max_per_sender` alerts already (new alerts only: a resolve of an alert opsplane does
        not hold is nothing, and is queued)."""
        refused = []
        with self._lock:
            held = {**self._taken, **self._held}
            counts = Counter(held.values())
            counts.update(item.sender for key, item in self._waiting.items() if key not in held)
            for item in alerts:
                known = item.fingerprint in held or item.fingerprint in self._waiting
                if not known and not item.resolved:
                    if counts[item.sender] >= self.max_per_sender:
                        refused.append(item)
                        continue
                    counts[item.sender] += 1
                self._waiting.pop(item.fingerprint, None)  # keep arrival order: latest last
                self._waiting[item.fingerprint] = item
        return refused

    def hold(self, kept: Iterable[str], senders: Mapping[str, str]) -> None:
        """After a cycle: the received alerts it kept (fingerprints), and who sent those that
        arrived in it (by fingerprint); the others keep the sender they had."""
        with self._lock:
            self._held = {key: senders.get(key) or self._held.get(key, "") for key in kept}
            self._taken = {}

    def take(self) -> list[ReceivedAlert]:
        """Everything waiting, oldest first; the inbox is empty afterwards (what was taken
        counts for its senders until the cycle says what it kept, or gives it back)."""
        with self._lock:
            taken, self._waiting = list(self._waiting.values()), {}
            self._taken = {item.fingerprint: item.sender for item in taken if not item.resolved}
        return taken

    def give_back(self, alerts: Sequence[ReceivedAlert]) -> None:
        """Return what a failed cycle took, unless a newer copy arrived meanwhile."""
        with self._lock:
            self._taken = {}
            newer = self._waiting
            self._waiting = {a.fingerprint: a for a in alerts if a.fingerprint not in newer}
            self._waiting.update(newer)

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)
