"""The escalation's promise, checked by hypothesis over the real `page_cycle` and the real
dispatcher on a real SQLite store with an injected clock, delivering to a real HTTP receiver on
loopback: whatever sequence of incidents opened, acknowledgements, resolutions (also while a
page is being sent), raised severities, on-call overrides, paging cycles (on time, late, or
twice at one instant), dispatcher passes and receivers failing or throttling, nobody is
paged for a settled incident, each cycle leaves every step then owed paged to exactly its
people, once; no page reaches the receiver after its incident was settled unless its send had
begun before; and the acknowledge or resolve goes to exactly those a page reached.

The expectation is a model written apart from the code under test: step times in closed form,
on-call people from the rotation and the overrides the model itself recorded."""

from __future__ import annotations

import itertools
import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.incidents import paging, service
from opsplane.incidents.models import AlertSignal, IncidentsSettings
from opsplane.notify import service as notify
from opsplane.notify.dispatcher import Dispatcher
from opsplane.oncall import service as oncall
from opsplane.store import Store
from tests.incidents.paging_support import CHANNELS, CONTACTS
from tests.notify.factories import seeded
from tests.oncall.factories import PEOPLE, T0, oncall_data
from tests.support.receivers import Answer, Received, RecordingReceiver

# Policies in minutes: (delay, targets, via) per step; repeats make late runs skip rounds.
POLICIES: dict[str, dict[str, Any]] = {
    "p0": {"steps": [(0, ["layer:primary", "channel:incidents"], ["pagerduty", "sms", "phone"]),
                     (5, ["layer:secondary"], ["pagerduty", "phone"]),
                     (10, ["role:team_lead"], ["sms", "email"])],
           "repeat": 1, "repeat_after": 10},
    "p1": {"steps": [(0, ["layer:primary"], ["pagerduty"]),
                     (15, ["layer:secondary", "person:dan"], ["pagerduty", "email"])],
           "repeat": 2, "repeat_after": 5},
    "p2": {"steps": [(0, ["channel:incidents"], ["email"]),
                     (20, ["person:vera"], ["phone"])]},
}
SEVERITY_POLICY = {"P0": "p0", "P1": "p1", "P2": "p2"}
RANK = {"P0": 0, "P1": 1, "P2": 2}
ROTATION = {"primary": "ana", "secondary": "ben"}  # the week of T0, far from a handoff
ROLES = {"team_lead": "tina"}
CHANNEL_OF = {**CONTACTS, "pagerduty": "pagerduty"}
EXAMPLES = 60


def _inventory_yaml(receiver: RecordingReceiver) -> str:
    policies = {name: {"steps": [{"delay": f"{delay}m", "notify": targets, "via": via}
                                 for delay, targets, via in spec["steps"]],
                       "repeat": spec.get("repeat", 0), "repeat_after": f"{spec.get('repeat_after', 30)}m"}
                for name, spec in POLICIES.items()}
    # every channel a webhook to the one receiver, by path: what it takes names the row it was
    channels = {name: {"type": "webhook", "url": receiver.url(f"/{name}")} for name in CHANNELS}
    data = {"platform": {"name": "shop"}, "channels": {"named": channels},
            "oncall": oncall_data(contact_channels=CONTACTS, roles=ROLES, policies=policies,
                                  severities=SEVERITY_POLICY)}
    return yaml.safe_dump(data, sort_keys=False)


def _step_times(spec: dict[str, Any]) -> list[tuple[timedelta, int, int]]:
    """(offset, round, step) of every step: step i of round r is at D_i + r * (D_last - D_0 +
    repeat_after), D_i being the delays summed up to step i (a repeat skips the first delay)."""
    delays = [delay for delay, _, _ in spec["steps"]]
    cumulative = list(itertools.accumulate(delays))
    lap = cumulative[-1] - cumulative[0] + spec.get("repeat_after", 30)
    return [(timedelta(minutes=cumulative[i] + r * lap), r, i)
            for r in range(spec.get("repeat", 0) + 1) for i in range(len(delays))]


class Incident:
    def __init__(self, id: int, severity: str, started_at: datetime, group: str) -> None:
        self.id, self.severity, self.started_at, self.group = id, severity, started_at, group
        self.acknowledged_at: datetime | None = None
        self.resolved_at: datetime | None = None

    def settled_at(self) -> datetime | None:
        known = [t for t in (self.acknowledged_at, self.resolved_at) if t is not None]
        return min(known) if known else None


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Escalations(RuleBasedStateMachine):
    """One platform's incidents over a few simulated hours; `template` is a migrated store,
    `receiver` the HTTP receiver behind every channel, answering for the machine running."""

    template: ClassVar[Path]
    workdir: ClassVar[Path]
    receiver: ClassVar[RecordingReceiver]
    running: ClassVar[Escalations | None] = None
    _stores = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        path = self.workdir / f"store-{next(self._stores)}.db"
        shutil.copy(self.template, path)
        self.path = path
        self.store = Store.open(f"sqlite:///{path}")
        self.inventory = loads(_inventory_yaml(self.receiver), "opsplane.yaml")
        self.dispatcher = Dispatcher(self.store, self.inventory.channels, clock=ManualClock(T0),
                                     random_source=seeded())
        self.first_request = len(self.receiver.requests)  # this run's requests come after
        self.failing: dict[str, int] = {}  # channel -> the status its receiver answers instead of 202
        # "ack" or "resolve" while the next page is sent, with " failing" when it is then refused
        self.settle_during_send: str | None = None
        # incident -> requests the receiver had got when its settling committed: any of its
        # pages the receiver takes from then on had no business going out
        self.settled_after: dict[int, int] = {}
        self.handler_errors: list[BaseException] = []
        Escalations.running = self
        self.now = T0
        self.incidents: list[Incident] = []
        self.overrides: list[tuple[str, str, datetime, datetime]] = []  # in the order recorded
        self.owed: set[tuple[str, str, str | None]] = set()  # (channel, key, to) of every page owed
        self.handled: set[tuple[int, str, int, int]] = set()  # (incident, policy, round, step)
        self.alerts = itertools.count()
        # page_cycle logs a failure and carries on; here a failure is a failure
        self.failures = _Failures()
        logging.getLogger(paging.__name__).addHandler(self.failures)

    def teardown(self) -> None:
        Escalations.running = None
        logging.getLogger(paging.__name__).removeHandler(self.failures)
        self.dispatcher.close()
        self.store.close()
        self.path.unlink(missing_ok=True)

    @classmethod
    def answer(cls, number: int, request: Received) -> Answer:
        """The receiver's answer, decided by the machine running; it may settle an incident
        while the page is being sent (the page was claimed first: it may go out)."""
        machine = cls.running
        if machine is None:
            return Answer()
        try:
            fail = machine._settle_while_sending(request)
        except BaseException as exc:  # seen by the next dispatch rule
            machine.handler_errors.append(exc)
            fail = False
        status = 503 if fail else machine.failing.get(request.path.strip("/"))
        if status == 429:
            return Answer(429, b"slow down", headers=(("Retry-After", "30"),))
        return Answer(status, b"unavailable") if status else Answer()

    def _settle_while_sending(self, request: Received) -> bool:
        """Settle the incident of the page being sent if the machine said so; True when that
        page's receiver is to fail it."""
        body = request.json()
        if self.settle_during_send is None or not body["key"].startswith("escalation:"):
            return False
        incident = next(i for i in self.incidents if i.id == int(body["key"].split(":")[1]))
        if incident.settled_at() is not None:
            return False
        how, self.settle_during_send = self.settle_during_send, None
        self._settle(incident, resolve=how.startswith("resolve"), in_flight=1)
        return how.endswith("failing")

    # --- what happens -------------------------------------------------------------------------

    @initialize(severity=st.sampled_from(["P0", "P1", "P2"]))
    def first_incident(self, severity: str) -> None:
        self.open_incident(severity)

    @precondition(lambda self: len(self.incidents) < 5
                  and sum(1 for i in self.incidents if i.settled_at() is None) < 2)
    @rule(severity=st.sampled_from(["P0", "P1", "P2"]))
    def open_incident(self, severity: str) -> None:
        group = f"payments|n={len(self.incidents)}"
        with self.store.session() as session:
            row = service.create(session, title="Payments down", service="payments", severity=severity,
                                 actor="system:incidents", now=self.now, settings=IncidentsSettings(),
                                 group=group)
            self.incidents.append(Incident(row.id, severity, self.now, group))

    @rule(seconds=st.integers(1, 90))
    def a_moment_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(minutes=st.integers(2, 50))
    def paging_stalls(self, minutes: int) -> None:
        """Minutes pass with no paging cycle: serve is down, or a dispatcher pass is long."""
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: any(i.resolved_at is None for i in self.incidents))
    @rule(data=st.data(), resolve=st.booleans())
    def respond(self, data: st.DataObject, resolve: bool) -> None:
        """A responder acknowledges an incident nobody holds yet, or resolves an open one."""
        if resolve:
            self._settle(data.draw(st.sampled_from([i for i in self.incidents if i.resolved_at is None])),
                         resolve=True)
            return
        waiting = [i for i in self.incidents if i.settled_at() is None]
        if waiting:
            self._settle(data.draw(st.sampled_from(waiting)), resolve=False)

    @precondition(lambda self: any(i.settled_at() is None for i in self.incidents))
    @rule(resolve=st.booleans(), fail=st.booleans())
    def respond_while_a_page_is_sent(self, resolve: bool, fail: bool) -> None:
        """A dispatcher pass in which the first page of an incident nobody holds yet that the
        receiver gets makes someone acknowledge or resolve it, while that page's send is in
        flight; and that receiver may then fail the page (503)."""
        self.settle_during_send = ("resolve" if resolve else "ack") + (" failing" if fail else "")
        try:
            self.dispatch()
        finally:
            self.settle_during_send = None

    def _settle(self, incident: Incident, *, resolve: bool, in_flight: int = 0) -> None:
        with self.store.session() as session:
            if resolve:
                service.resolve(session, incident_id=incident.id, actor="cli:ana", now=self.now,
                                settings=IncidentsSettings())
            else:
                service.acknowledge(session, incident_id=incident.id, actor="cli:ana", now=self.now)
        if resolve:
            incident.resolved_at = self.now
        incident.acknowledged_at = incident.acknowledged_at or self.now
        # committed: the receiver has had its requests so far, and the one being answered
        self.settled_after.setdefault(incident.id, len(self.receiver.requests) + in_flight)

    @rule()
    def dispatch(self) -> None:
        """A dispatcher pass now: nothing reaches the receiver that should not."""
        self.dispatcher.run_once(self.now)
        assert not self.handler_errors, self.handler_errors[0]
        self._check_deliveries()

    @rule(channel=st.sampled_from(sorted(CHANNELS)), status=st.sampled_from([None, None, 503, 429]))
    def receiver_answers(self, channel: str, status: int | None) -> None:
        """One channel's receiver starts failing (503), throttling (429) or recovers."""
        if status is None:
            self.failing.pop(channel, None)
        else:
            self.failing[channel] = status

    @precondition(lambda self: any(i.resolved_at is None and i.severity != "P0" for i in self.incidents))
    @rule(data=st.data())
    def raise_severity(self, data: st.DataObject) -> None:
        """A more severe alert joins the incident (alerts open incidents of P0 and P1 only)."""
        incident = data.draw(st.sampled_from(
            [i for i in self.incidents if i.resolved_at is None and i.severity != "P0"]))
        severity = data.draw(st.sampled_from([s for s in ("P0", "P1") if RANK[s] < RANK[incident.severity]]))
        alert = AlertSignal(fingerprint=f"alert-{next(self.alerts)}", name="PaymentsFailing",
                            severity=severity, service="payments", group=incident.group,
                            summary="Payments fail", active_at=self.now)
        with self.store.session() as session:
            [joined] = service.open_or_join(session, alerts=[alert], now=self.now,
                                            settings=IncidentsSettings())
        assert (joined.id, joined.severity) == (incident.id, severity)
        incident.severity = severity

    @rule(layer=st.sampled_from(["primary", "secondary"]), person=st.sampled_from(["cleo", "ben", "paul"]),
          start=st.integers(-40, 60), minutes=st.integers(1, 90))
    def override(self, layer: str, person: str, start: int, minutes: int) -> None:
        """Someone else takes a layer for a while, recorded now; it may start in the past."""
        begin = self.now + timedelta(minutes=start)
        end = begin + timedelta(minutes=minutes)
        with self.store.session() as session:
            oncall.record_override(session, settings=self.inventory.oncall, schedule="platform",
                                   layer=layer, person=person, start=begin, end=end, actor="cli:ana",
                                   clock=ManualClock(self.now))
        self.overrides.append((layer, person, begin, end))

    @rule()
    def page(self) -> None:
        """One paging cycle now; it must queue exactly what the model says is owed by now."""
        before = self._escalation_rows()
        self._expect_owed()
        paging.page_cycle(self.store, inventory=self.inventory, now=self.now)
        assert not self.failures.records, self.failures.records[0].exc_info
        after = self._escalation_rows()
        settled = {i.id for i in self.incidents if (at := i.settled_at()) is not None and at <= self.now}
        assert not [key for _, key, _ in after - before if int(key.split(":")[1]) in settled]
        assert after == self.owed
        self._check_followed()

    # --- the model ----------------------------------------------------------------------------

    def _expect_owed(self) -> None:
        """Add to `owed` the pages of every step that is due now and not yet handled, for each
        incident nobody has taken in hand; a step's people are those on call when it fell due,
        as known now."""
        for incident in self.incidents:
            settled = incident.settled_at()
            if settled is not None and settled <= self.now:
                continue
            policy = SEVERITY_POLICY[incident.severity]
            spec = POLICIES[policy]
            latest: dict[int, tuple[datetime, int]] = {}
            for offset, round_, step in _step_times(spec):
                at = incident.started_at + offset
                if at <= self.now and round_ >= latest.get(step, (at, -1))[1]:
                    latest[step] = (at, round_)
            for step, (at, round_) in latest.items():
                if (incident.id, policy, round_, step) in self.handled:
                    continue
                self.handled.add((incident.id, policy, round_, step))
                _, targets, via = spec["steps"][step]
                base = f"escalation:{incident.id}:{policy}:r{round_}:s{step}"
                for target in targets:
                    self.owed.update(self._pages(base, target, via, at))

    def _pages(self, base: str, target: str, via: list[str],
               at: datetime) -> set[tuple[str, str, str | None]]:
        kind, _, name = target.partition(":")
        if kind == "channel":
            return {(name, f"{base}:#{name}:channel", None)}
        person = {"layer": lambda: self._on_call(name, at), "role": lambda: ROLES[name],
                  "person": lambda: name}[kind]()
        contact = PEOPLE[person]["contact"]
        return {(CHANNEL_OF[how], f"{base}:{person}:{how}", None if how == "pagerduty" else contact[how])
                for how in via if how in contact}

    def _on_call(self, layer: str, at: datetime) -> str:
        covering = [person for (lay, person, start, end) in self.overrides
                    if lay == layer and start <= at < end]
        return covering[-1] if covering else ROTATION[layer]

    def _escalation_rows(self) -> set[tuple[str, str, str | None]]:
        with self.store.session() as session:
            found = [(r.channel, r.key, r.payload.get("to")) for r in notify.get_all(session, limit=10_000)
                     if r.key.startswith("escalation:")]
        assert len(found) == len(set(found))
        return set(found)

    def _check_followed(self) -> None:
        """Everyone a page of an incident settled by now reached is told (acknowledge, or
        resolve), and nobody else: not the people whose pages were withdrawn."""
        with self.store.session() as session:
            rows = notify.get_all(session, limit=10_000)
        for incident in self.incidents:
            settled = incident.settled_at()
            if settled is None or settled > self.now:
                continue
            resolved = incident.resolved_at
            if resolved is not None and resolved < self.now - paging.RESOLVED_LOOKBACK:
                continue  # no longer looked at
            group = f"incident:{incident.id}"
            reached = {(r.channel, r.payload.get("to")) for r in rows
                       if r.group_key == group and r.status == "trigger" and r.state == "delivered"}
            told = {(r.channel, r.payload.get("to")) for r in rows
                    if r.group_key == group and r.status in ("acknowledge", "resolve")}
            assert reached == told, (incident.id, reached - told, told - reached)

    def _check_deliveries(self) -> None:
        """What the receiver took in this run: no page of an incident after its settling
        committed, unless that very send was in flight then; no acknowledge or resolve to an
        address (channel and `to`) no page of the incident reached; no withdrawn row."""
        taken = [(index, r.path.strip("/"), r.json()) for index, r in enumerate(self.receiver.requests)
                 if index >= self.first_request and 200 <= r.status < 300]
        reached: set[tuple[str, str, str | None]] = set()
        for index, channel, body in taken:
            group, to = body["group"], body.get("to")
            if body["key"].startswith("escalation:"):
                incident = int(body["key"].split(":")[1])
                assert index < self.settled_after.get(incident, index + 1), \
                    f"{body['key']} reached {channel} after INC-{incident} was settled"
            if body["status"] == "trigger":
                reached.add((group, channel, to))
            elif group.startswith("incident:"):
                assert (group, channel, to) in reached, f"{body['key']} told {channel} {to}, never paged"
        with self.store.session() as session:
            withdrawn = {(r.channel, r.key)
                         for r in notify.get_all(session, states=["withdrawn"], limit=10_000)}
        assert not withdrawn & {(channel, body["key"]) for _, channel, body in taken}


@pytest.mark.slow
def test_no_one_is_paged_for_a_settled_incident_and_every_owed_step_is_paged_once(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("escalations")
    template = workdir / "template.db"
    Store.open(f"sqlite:///{template}").close()
    Escalations.template, Escalations.workdir = template, workdir
    with RecordingReceiver(by_request=Escalations.answer) as receiver:
        Escalations.receiver = receiver
        run_state_machine_as_test(Escalations, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=40, deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow]))
