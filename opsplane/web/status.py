"""What the public status page says, and nothing more: the mapping from internal state to
customer words, and the one read of the store behind each view.

Only these leave the control plane: the names of the components on the page (not hosts,
whose names are machines', and not those with `status_page: false`), a public state per
component, incidents that have at least one public update (with a public title, the public
components they touch, impact, status and those public updates' summaries), standing
maintenance notices, and daily uptime. An incident's own title and service are internal (a
rule writes "db-host-7: check tcp failed 3 times in a row"): the page shows the title a
responder gave it for the public, else words made from its severity, and a component off the
page stands for the public components that depend on it (`PublicNames`). Check names, reasons,
addresses, hosts, ports, people and private updates never leave: the values built here hold
none of them, so no template can show them by mistake.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsplane.events.tables import Event
from opsplane.health.tables import CheckState
from opsplane.incidents.models import Status, ref
from opsplane.incidents.tables import IncidentRow, IncidentUpdateRow
from opsplane.web import maintenance
from opsplane.web.uptime import (
    ComponentUptime,
    CurrentState,
    DayUptime,
    StateChange,
    uptime_by_component,
    watch_spans,
    window_start,
)

if TYPE_CHECKING:
    from opsplane.live import LiveState

UPTIME_DAYS = 90
RESOLVED_SHOWN_FOR = timedelta(days=7)
UPTIME_CACHE_SECONDS = 30.0  # the bars are days wide; a view need not recompute 90 days of events
UPTIME_MIN_AGE = 5.0  # reused this long even if states changed: flapping checks cost one read per 5 s
SECTION_TITLES = {"services": "Services", "databases": "Databases", "caches": "Caches",
                  "proxies": "Proxies"}  # hosts are machines: not on a customer's page


class PublicState(StrEnum):
    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial outage"
    MAJOR_OUTAGE = "major outage"
    MAINTENANCE = "under maintenance"
    NO_DATA = "no data"

    @property
    def css(self) -> str:
        return self.value.replace(" ", "-")


_RANK = {PublicState.NO_DATA: -1, PublicState.OPERATIONAL: 0, PublicState.MAINTENANCE: 1,
         PublicState.DEGRADED: 2, PublicState.PARTIAL_OUTAGE: 3, PublicState.MAJOR_OUTAGE: 4}
# An incident marks its component at least this bad: the manual's P0 is "service completely
# down", P1 "major functionality impaired", P2 and P3 minor.
SEVERITY_STATE = {"P0": PublicState.MAJOR_OUTAGE, "P1": PublicState.PARTIAL_OUTAGE,
                  "P2": PublicState.DEGRADED, "P3": PublicState.DEGRADED}
IMPACT = {"P0": "critical", "P1": "major", "P2": "minor", "P3": "minor"}
# An incident's public title when no responder gave one: its severity's words, then "of" and
# the public components it touches, when it touches any.
GENERIC_TITLE = {"P0": "Major outage", "P1": "Service disruption", "P2": "Degraded performance",
                 "P3": "Degraded performance"}
# Before a person has said anything, an incident is being investigated as far as customers know.
PUBLIC_STATUS = {Status.TRIGGERED.value: "investigating", Status.ACKNOWLEDGED.value: "investigating"}
HEADLINE = {PublicState.OPERATIONAL: "All systems operational",
            PublicState.DEGRADED: "Some systems are degraded",
            PublicState.PARTIAL_OUTAGE: "Partial outage",
            PublicState.MAJOR_OUTAGE: "Major outage",
            PublicState.MAINTENANCE: "Maintenance in progress",
            PublicState.NO_DATA: "Status not yet known"}


def worst(states: Iterable[PublicState]) -> PublicState:
    return max(states, key=_RANK.__getitem__, default=PublicState.NO_DATA)


def state_from_checks(states: Sequence[str]) -> PublicState:
    """Every known check CRITICAL: major outage; some: partial outage; any WARNING: degraded.
    UNKNOWN says nothing about customers (the probe could not tell), so it is left out."""
    known = [s for s in states if s in ("OK", "WARNING", "CRITICAL")]
    if not known:
        return PublicState.NO_DATA
    critical = known.count("CRITICAL")
    if critical == len(known):
        return PublicState.MAJOR_OUTAGE
    if critical:
        return PublicState.PARTIAL_OUTAGE
    return PublicState.DEGRADED if "WARNING" in known else PublicState.OPERATIONAL


def component_state(check_states: Sequence[str], severities: Sequence[str],
                    in_maintenance: bool) -> PublicState:
    """The checks' word, made at least as bad as the component's public open incidents say;
    a component inside an announced window reads "under maintenance" whatever its checks say."""
    if in_maintenance:
        return PublicState.MAINTENANCE
    return worst([state_from_checks(check_states), *(SEVERITY_STATE.get(s, PublicState.DEGRADED)
                                                     for s in severities)])


# --- the values a page shows ------------------------------------------------------------------


@dataclass(frozen=True)
class PublicComponent:
    name: str
    group: str
    state: PublicState
    measured: ComponentUptime

    @property
    def days(self) -> tuple[DayUptime, ...]:
        return self.measured.days

    @property
    def uptime(self) -> float | None:
        """Over the observed time of the days only; None when nothing was observed."""
        return self.measured.fraction


@dataclass(frozen=True)
class PublicUpdate:
    at: datetime
    status: str
    message: str


@dataclass(frozen=True)
class PublicIncident:
    ref: str
    title: str
    components: tuple[str, ...]  # public components only; () when it touches none of them
    impact: str
    status: str
    started_at: datetime
    resolved_at: datetime | None
    updates: tuple[PublicUpdate, ...]  # newest first


@dataclass(frozen=True)
class StatusReport:
    platform: str
    now: datetime
    components: tuple[PublicComponent, ...]
    active: tuple[PublicIncident, ...]
    resolved: tuple[PublicIncident, ...]
    notices: tuple[maintenance.MaintenanceNotice, ...]
    state: PublicState = field(default=PublicState.NO_DATA)

    @property
    def headline(self) -> str:
        return HEADLINE[self.state]

    @property
    def monitoring_since(self) -> datetime | None:
        """When the first component shown was first observed in the window."""
        return min((c.measured.since for c in self.components if c.measured.since), default=None)

    def groups(self) -> list[tuple[str, list[PublicComponent]]]:
        found: dict[str, list[PublicComponent]] = {}
        for component in self.components:
            found.setdefault(component.group, []).append(component)
        return list(found.items())

    def as_dict(self) -> dict[str, Any]:
        """The JSON endpoint's body."""
        return {
            "platform": self.platform, "generated_at": self.now.isoformat(),
            "monitoring_since": _iso(self.monitoring_since),
            "status": {"state": self.state.value, "description": self.headline},
            "components": [_component_dict(c) for c in self.components],
            "incidents": [_incident_dict(i) for i in self.active],
            "resolved_incidents": [_incident_dict(i) for i in self.resolved],
            "maintenance": [n.as_dict(self.now) for n in self.notices],
        }


def _component_dict(component: PublicComponent) -> dict[str, Any]:
    uptime = component.uptime
    return {"name": component.name, "group": component.group, "state": component.state.value,
            "uptime_90d": None if uptime is None else round(uptime, 6),
            "observed_seconds": round(component.measured.observed),
            "monitoring_since": _iso(component.measured.since),
            "days": [{"date": d.day.isoformat(),
                      "uptime": None if d.fraction is None else round(d.fraction, 6),
                      "observed_seconds": round(d.observed)}
                     for d in component.days]}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _incident_dict(incident: PublicIncident) -> dict[str, Any]:
    return {"id": incident.ref, "title": incident.title, "components": list(incident.components),
            "impact": incident.impact, "status": incident.status,
            "started_at": incident.started_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "updates": [{"at": u.at.isoformat(), "status": u.status, "message": u.message}
                        for u in incident.updates]}


# --- reading the store ------------------------------------------------------------------------


def public_components(plane: LiveState) -> list[tuple[str, str]]:
    """(name, group title) of every component the page shows, in inventory order: not hosts,
    and not those the inventory keeps off the page (`status_page: false`)."""
    return [(name, SECTION_TITLES[section]) for section, name, component in plane.inventory.components()
            if section in SECTION_TITLES and component.status_page]


class PublicNames:
    """What customers call each component of the inventory: itself when it is on the page;
    otherwise (a host, a part kept off the page) the public components that depend on it, the
    nearest ones through any others that are off the page too, in page order; nothing when no
    public component depends on it, and nothing for a name the inventory does not know."""

    def __init__(self, shown: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> None:
        self._order = {name: n for n, name in enumerate(shown)}
        self._dependants: dict[str, list[str]] = {}
        for name, needs in depends_on.items():
            for need in needs:
                self._dependants.setdefault(need, []).append(name)
        self._known = set(depends_on) | set(shown)
        self._found: dict[str, tuple[str, ...]] = {}

    def of(self, name: str) -> tuple[str, ...]:
        if name not in self._found:
            self._found[name] = self._walk(name) if name in self._known else ()
        return self._found[name]

    def of_all(self, names: Iterable[str]) -> tuple[str, ...]:
        found = {public for name in names for public in self.of(name)}
        return tuple(sorted(found, key=self._order.__getitem__))

    def _walk(self, name: str) -> tuple[str, ...]:
        if name in self._order:
            return (name,)
        found: set[str] = set()
        seen, todo = {name}, [name]
        while todo:
            for dependant in self._dependants.get(todo.pop(), ()):
                if dependant in seen:
                    continue
                seen.add(dependant)
                if dependant in self._order:
                    found.add(dependant)  # the nearest public one: what lies above it is its own
                else:
                    todo.append(dependant)
        return tuple(sorted(found, key=self._order.__getitem__))


def public_names(plane: LiveState, shown: Sequence[str]) -> PublicNames:
    return PublicNames(shown, {name: c.depends_on for _, name, c in plane.inventory.components()})


def public_title(given: str | None, severity: str, components: Sequence[str]) -> str:
    """The title a responder gave the public, else 'Service disruption of orders' and the like."""
    if given:
        return given
    words = GENERIC_TITLE.get(severity, GENERIC_TITLE["P2"])
    return f"{words} of {_and(components)}" if components else words


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def read_report(session: Session, plane: LiveState, *, now: datetime,
                cache: UptimeCache | None = None) -> StatusReport:
    """Everything the page shows; a fresh `cache` spares the 90-day query."""
    components = public_components(plane)
    names = [name for name, _ in components]
    public = public_names(plane, names)
    ours = {t.id: t.component for t in plane.targets}
    rows = [row for row in session.scalars(select(CheckState)) if ours.get(row.check_id) == row.component]
    monotonic = plane.clock.monotonic()
    key = (now.date(), frozenset((r.check_id, r.state, r.since) for r in rows))
    uptime = cache.get(monotonic, key) if cache is not None else None
    if uptime is None:
        uptime = compute_uptime(session, plane, names, rows, now=now)
        if cache is not None:
            cache.put(monotonic, key, uptime)
    notices = [replace(n, components=public.of_all(n.components))
               for n in maintenance.get_shown(session, now=now)]
    active, resolved = read_incidents(session, now=now)
    states: dict[str, list[str]] = {}
    for row in rows:
        states.setdefault(row.component, []).append(row.state)
    severities: dict[str, list[str]] = {}
    for incident in active:
        for name in public.of(incident.service):
            severities.setdefault(name, []).append(incident.severity)
    under_way = {c for n in notices if n.active(now) for c in n.components}
    shown = tuple(PublicComponent(
        name=name, group=group, measured=uptime.get(name, ComponentUptime((), None)),
        state=component_state(states.get(name, []), severities.get(name, []), name in under_way))
        for name, group in components)
    overall_state = worst(c.state for c in shown if c.state is not PublicState.MAINTENANCE)
    if overall_state in (PublicState.OPERATIONAL, PublicState.NO_DATA) and under_way:
        overall_state = PublicState.MAINTENANCE
    return StatusReport(platform=plane.inventory.platform.name, now=now, components=shown,
                        active=tuple(_public(i, u, public) for i, u in active.items()),
                        resolved=tuple(_public(i, u, public) for i, u in resolved.items()),
                        notices=tuple(notices), state=overall_state)


def compute_uptime(session: Session, plane: LiveState, names: Sequence[str],
                   rows: Sequence[CheckState], *, now: datetime) -> dict[str, ComponentUptime]:
    """Daily uptime from one query of the window's `check.state_changed` events (only the
    columns needed, for the checks this control plane watches) and two small ones of the
    control plane's starts and stops, which say when anything was watching at all."""
    ours = {t.id: t.component for t in plane.targets}
    table = Event.__table__
    start = window_start(now, UPTIME_DAYS)
    query = (select(table.c.target, table.c.service, table.c.ts, table.c.outcome, table.c.details)
             .where(table.c.kind == "check.state_changed", table.c.ts >= start)
             .order_by(table.c.ts, table.c.id))
    # Through the connection, not the ORM: tens of thousands of rows need no identity map.
    changes = [StateChange(check_id=target, component=service, at=ts, before=details.get("from"),
                           after=outcome)
               for target, service, ts, outcome, details in session.connection().execute(query)
               if service is not None and ours.get(target) == service]
    current = [CurrentState(r.check_id, r.component, r.state, r.since) for r in rows]
    lifecycle, running_before = _lifecycle(session, start)
    watched = watch_spans(lifecycle, running_before=running_before, start=start,
                          evidence=[c.at for c in changes])
    return uptime_by_component(names, changes, current, now=now, days=UPTIME_DAYS, watched=watched)


def _lifecycle(session: Session, start: datetime) -> tuple[list[tuple[datetime, str]], bool | None]:
    """The control plane's starts and stops since `start` in time order, and whether it was
    running at `start` (None when no start or stop before it is recorded)."""
    table = Event.__table__
    kinds = {f"control_plane.{kind}": kind for kind in ("started", "stopped")}
    found = session.connection().execute(
        select(table.c.ts, table.c.kind).where(table.c.kind.in_(kinds), table.c.ts >= start)
        .order_by(table.c.ts, table.c.id))
    lifecycle = [(ts, kinds[kind]) for ts, kind in found]
    last = session.connection().execute(
        select(table.c.kind).where(table.c.kind.in_(kinds), table.c.ts < start)
        .order_by(table.c.ts.desc(), table.c.id.desc()).limit(1)).scalar()
    return lifecycle, None if last is None else kinds[last] == "started"


def read_incidents(session: Session, *, now: datetime) -> tuple[
        dict[IncidentRow, list[IncidentUpdateRow]], dict[IncidentRow, list[IncidentUpdateRow]]]:
    """Open incidents and those resolved in the last 7 days that have at least one public
    update, each with its public updates newest first: (active, recently resolved)."""
    recent = (select(IncidentRow)
              .where(or_(IncidentRow.status != Status.RESOLVED.value,
                         IncidentRow.resolved_at >= now - RESOLVED_SHOWN_FOR))
              .order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc()))
    incidents = list(session.scalars(recent))
    updates: dict[int, list[IncidentUpdateRow]] = {}
    if incidents:
        query = (select(IncidentUpdateRow)
                 .where(IncidentUpdateRow.incident_id.in_([i.id for i in incidents]),
                        IncidentUpdateRow.public.is_(True))
                 .order_by(IncidentUpdateRow.at.desc(), IncidentUpdateRow.id.desc()))
        for update in session.scalars(query):
            updates.setdefault(update.incident_id, []).append(update)
    active: dict[IncidentRow, list[IncidentUpdateRow]] = {}
    resolved: dict[IncidentRow, list[IncidentUpdateRow]] = {}
    for incident in incidents:
        if incident.id in updates:  # nothing public said yet: not on the page
            shelf = resolved if incident.status == Status.RESOLVED.value else active
            shelf[incident] = updates[incident.id]
    return active, resolved


def _public(incident: IncidentRow, updates: Sequence[IncidentUpdateRow],
            public: PublicNames) -> PublicIncident:
    components = public.of(incident.service)
    return PublicIncident(
        ref=ref(incident.id), components=components,
        title=public_title(incident.public_title, incident.severity, components),
        impact=IMPACT.get(incident.severity, "minor"),
        status=PUBLIC_STATUS.get(incident.status, incident.status),
        started_at=incident.started_at, resolved_at=incident.resolved_at,
        updates=tuple(PublicUpdate(at=u.at, status=PUBLIC_STATUS.get(u.status, u.status),
                                   message=u.summary) for u in updates))


class UptimeCache:
    """The last uptime computation, reused while the checks' states are unchanged (for at most
    UPTIME_CACHE_SECONDS, within the same day), and for UPTIME_MIN_AGE in any case: a page that
    many customers reload during an incident costs one 90-day query per state change, at most
    one per 5 s, and at least one per half minute; never one per view."""

    def __init__(self, ttl: float = UPTIME_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: tuple[float, Hashable, dict[str, ComponentUptime]] | None = None

    def get(self, monotonic: float, key: Hashable) -> dict[str, ComponentUptime] | None:
        with self._lock:
            if self._value is None:
                return None
            at, known, value = self._value
            age = monotonic - at
            return value if age < UPTIME_MIN_AGE or (age < self.ttl and known == key) else None

    def put(self, monotonic: float, key: Hashable, value: dict[str, ComponentUptime]) -> None:
        with self._lock:
            self._value = (monotonic, key, value)


def report(plane: LiveState, cache: UptimeCache | None = None) -> StatusReport:
    """The page's values, read from the store in one session (uptime from `cache` when fresh)."""
    with plane.store.session() as session:
        return read_report(session, plane, now=plane.clock.now(), cache=cache)
