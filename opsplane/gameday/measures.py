"""What a game day measures, as a pure function of the event log and the time.

From the moment the fault was injected:

- detect: the first check of a watched component that turned WARNING or CRITICAL, or the first
  of its alerts to turn pending or firing (`check.state_changed`, `alert.pending`, `alert.firing`);
- page: the first escalation page of an incident about a watched component delivered by the
  outbox (`notify.delivered` of a key `escalation:...`);
- recover: the first runbook run for that incident that succeeded (`runbook.finished`, ok);
- resolve: the first of those incidents resolved (`incident.resolved`).

Each is judged against its target: the scenario's, else the severity table's (detection and
paging within the response time, recovery and resolution within the resolution target) of the
incident's severity, or the scenario's when no incident was opened.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from opsplane.gameday.models import MEASURES

Verdict = Literal["pass", "fail", "waiting", "not expected"]
DETECTING = ("alert.pending", "alert.firing")
BAD_STATES = ("WARNING", "CRITICAL")


@dataclass(frozen=True)
class Signal:
    """One event, as much of it as the measures read."""

    ts: datetime
    kind: str
    service: str | None
    outcome: str
    target: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measure:
    """One measure of a game day: when it came, how long after the injection, its target and
    the verdict, and the event that showed it."""

    name: str
    expected: bool
    seconds: float | None
    at: datetime | None
    target: float | None
    verdict: Verdict
    evidence: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expected": self.expected, "seconds": self.seconds,
                "at": self.at.isoformat() if self.at else None, "target": self.target,
                "verdict": self.verdict, "evidence": self.evidence}


@dataclass(frozen=True)
class Measures:
    """Every measure, the incidents the fault opened and their severity."""

    measures: tuple[Measure, ...]
    incidents: tuple[int, ...]
    severity: str

    def get(self, name: str) -> Measure:
        return next(m for m in self.measures if m.name == name)

    @property
    def seen(self) -> frozenset[str]:
        return frozenset(m.name for m in self.measures if m.at is not None)

    @property
    def passed(self) -> bool:
        """Every expected measure came within its target."""
        return all(m.verdict == "pass" for m in self.measures if m.expected)


@dataclass(frozen=True)
class Judged:
    """What the measures need besides the events: where the targets come from."""

    expect: Collection[str]
    severity: str  # the scenario's, used when no incident was opened
    targets: Mapping[str, float | None]  # the scenario's own, by measure (None: the table's)
    response: Mapping[str, float]  # severity -> response time (s)
    resolution: Mapping[str, float]  # severity -> resolution target (s)


def measure(signals: Iterable[Signal], *, injected_at: datetime, watched: Collection[str],
            judged: Judged, now: datetime, finished: bool) -> Measures:
    """The measures of a game day whose fault was injected at `injected_at`, over `signals`
    (any order; those before the injection are left out). A measure not seen yet is
    `waiting` until it is late (past its target at `now`) or the game day is `finished`,
    then it fails when it was expected."""
    ordered = sorted((s for s in signals if s.ts >= injected_at), key=lambda s: s.ts)
    opened = _incidents(ordered, watched)
    severity = opened[0][1] if opened else judged.severity
    ids = {incident for incident, _ in opened}
    firsts = {
        "detect": _first(ordered, lambda s: s.service in watched and (
            (s.kind == "check.state_changed" and s.outcome in BAD_STATES) or s.kind in DETECTING)),
        "page": _first(ordered, lambda s: s.kind == "notify.delivered"
                       and str(s.details.get("key", "")).startswith("escalation:")
                       and (s.service in watched or _incident_of_key(s.details.get("key")) in ids)),
        "recover": _first(ordered, lambda s: s.kind == "runbook.finished" and s.outcome == "ok"
                          and _as_int(s.details.get("incident")) in ids),
        "resolve": _first(ordered, lambda s: s.kind == "incident.resolved"
                          and _as_int(s.details.get("incident")) in ids),
    }
    found = []
    for name in MEASURES:
        target = judged.targets.get(name)
        if target is None:
            table = judged.response if name in ("detect", "page") else judged.resolution
            target = table.get(severity)
        signal = firsts[name]
        seconds = (signal.ts - injected_at).total_seconds() if signal else None
        expected = name in judged.expect
        found.append(Measure(name, expected, None if seconds is None else round(seconds, 3),
                             signal.ts if signal else None, target,
                             _verdict(seconds, target, expected, waited=(now - injected_at).total_seconds(),
                                      finished=finished),
                             _evidence(signal) if signal else ""))
    return Measures(tuple(found), tuple(sorted(ids)), severity)


def _verdict(seconds: float | None, target: float | None, expected: bool, *, waited: float,
             finished: bool) -> Verdict:
    if seconds is not None:
        if target is None or seconds <= target:
            return "pass"
        return "fail" if expected else "not expected"
    if not expected:
        return "not expected"
    if finished or (target is not None and waited > target):
        return "fail"
    return "waiting"


def _incidents(ordered: Sequence[Signal], watched: Collection[str]) -> list[tuple[int, str]]:
    """(id, severity) of the incidents about watched components opened or joined since the
    injection, in the order they opened."""
    found: dict[int, str] = {}
    for s in ordered:
        if s.kind in ("incident.opened", "incident.alert_joined") and s.service in watched:
            incident = _as_int(s.details.get("incident"))
            if incident is not None:
                found.setdefault(incident, str(s.details.get("severity") or ""))
    return list(found.items())


def _first(ordered: Sequence[Signal], wanted: Any) -> Signal | None:
    return next((s for s in ordered if wanted(s)), None)


def _incident_of_key(key: object) -> int | None:
    """The incident of an escalation page's key `escalation:<incident>:...`."""
    parts = str(key or "").split(":")
    return _as_int(parts[1]) if len(parts) > 1 else None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _evidence(signal: Signal) -> str:
    """The event that showed a measure, in a few words."""
    if signal.kind == "check.state_changed":
        return f"check {signal.target} turned {signal.outcome}"
    if signal.kind.startswith("alert."):
        return f"alert {signal.target} {signal.kind.removeprefix('alert.')}"
    if signal.kind == "notify.delivered":
        return f"page delivered by {signal.details.get('channel', '?')}"
    if signal.kind == "runbook.finished":
        return f"runbook {signal.details.get('runbook', '?')} run {signal.details.get('run', '?')} succeeded"
    return f"{signal.target} {signal.kind.removeprefix('incident.')}"


def verdict(measures: Measures, *, undone: bool) -> str:
    """The game day's verdict: pass when every expected measure passed and the fault was undone."""
    return "pass" if measures.passed and undone else "fail"
