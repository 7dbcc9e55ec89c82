"""Runs of a runbook against real parts: an HTTP server the inventory checks, real commands, the
store; time on a clock the test moves, so a wait_until's looks take no real time. Each step is
recorded with its outcome, a person's answers with their name, approvals only from a second
person with the step's role, and a run for an incident joins its timeline and post-mortem."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads as load_inventory
from opsplane.events import service as events
from opsplane.incidents import postmortem
from opsplane.incidents import service as incidents
from opsplane.runbooks import runner, service
from opsplane.runbooks.flows import LivePlatform
from opsplane.runbooks.loader import loads
from opsplane.runbooks.models import render
from opsplane.store import Store
from tests.support.http_servers import LocalHttpServer, Reply

START = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
WEB_DOWN = f"""
name: web-down
title: Web does not answer
parameters:
  service: {{of: service, default: web}}
steps:
  - {{id: look, kind: check, check: "${{service}}/http", safe: true}}
  - id: which
    kind: decide
    step: look
    when: {{ok: fine, failed: restart}}
  - id: restart
    kind: command
    argv: [{sys.executable}, -c, "import os; print('restarting', os.environ['OPSPLANE_RUNBOOK_RUN'])"]
  - {{id: wait, kind: wait_until, check: "${{service}}/http", timeout: 2m, every: 10s}}
  - {{id: better, kind: confirm, prompt: "Do customers see the shop again?"}}
  - {{id: fine, kind: note, text: web answers, safe: true}}
"""


class Answers:
    """A person who answers as told; an answer left out is nobody answering."""

    def __init__(self, actor: str = "cli:ana", **said: Any) -> None:
        self.actor = actor
        self.said = said
        self.asked: list[str] = []

    def confirm(self, run: Any, step: Any) -> bool | None:
        self.asked.append(f"confirm {step.id}")
        return self.said.get("confirm")  # type: ignore[no-any-return]

    def allow(self, run: Any, step: Any, plan: str) -> str | None:
        self.asked.append(f"allow {step.id}")
        return self.said.get("allow")  # type: ignore[no-any-return]

    def typed(self, run: Any, step: Any, word: str) -> bool | None:
        self.asked.append(f"type {word}")
        return self.said.get("typed")  # type: ignore[no-any-return]

    def happened(self, run: Any, step: Any, attempt: int) -> str | None:
        self.asked.append(f"happened {step.id}")
        return self.said.get("happened")  # type: ignore[no-any-return]


@pytest.fixture
def web() -> Iterator[LocalHttpServer]:
    with LocalHttpServer({"/health": Reply(503, b"down")}) as server:
        yield server


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield opened
    opened.close()


def inventory(web: LocalHttpServer) -> Any:
    return load_inventory(f"""
platform: {{name: shop}}
services:
  web:
    url: http://127.0.0.1:{web.port}
    checks: [{{type: http, path: /health}}]
  gateway: {{port: 8000}}
""")


def begin(store: Store, web: LocalHttpServer, text: str = WEB_DOWN, *, incident: int | None = None,
          requested_by: str = "cli:ana", mode: str = "manual", clock: ManualClock) -> tuple[int, Any]:
    inv = inventory(web)
    loaded = loads(text, "web-down.yaml", inv)
    run_id = runner.start(store, runbook=render(loaded.runbook, {"service": "web"}),
                          parameters={"service": "web"}, requested_by=requested_by, mode=mode, clock=clock,
                          incident_id=incident)
    return run_id, inv


def drive(store: Store, inv: Any, run_id: int, clock: ManualClock, person: Any,
          on_sleep: Any = None, tmp: Path = Path(".")) -> str:
    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if on_sleep:
            on_sleep()

    driver = runner.Runner(store, LivePlatform(inv, base_dir=tmp, store=store, clock=clock), clock=clock,
                           actor=person.actor if person else "system:runbooks", person=person, sleep=sleep)
    try:
        return driver.drive(run_id)
    finally:
        driver.close()


def outcomes(store: Store, run_id: int) -> list[tuple[str, int, str | None]]:
    with store.session() as session:
        return [(r.step_id, r.attempt, r.outcome) for r in service.steps(session, run_id)]


def test_a_run_checks_decides_runs_a_command_waits_and_asks(sqlite: Store, web: LocalHttpServer,
                                                           tmp_path: Path) -> None:
    clock = ManualClock(START)
    run_id, inv = begin(sqlite, web, clock=clock)
    looks = []

    def recover() -> None:  # the service answers again after the third look of the wait
        looks.append(clock.now())
        if len(looks) == 2:
            web.script.routes["/health"] = Reply(200, b"ok")

    person = Answers(allow="yes", confirm=True)
    assert drive(sqlite, inv, run_id, clock, person, recover, tmp_path) == "succeeded"

    steps = outcomes(sqlite, run_id)
    assert steps == [("look", 1, "failed"), ("which", 1, "ok"), ("restart", 1, "ok"), ("wait", 1, "not_yet"),
                     ("wait", 2, "not_yet"), ("wait", 3, "ok"), ("better", 1, "yes"), ("fine", 1, "ok")]
    assert person.asked == ["allow restart", "confirm better"]
    assert (clock.now() - START).total_seconds() == 20  # two waits of 10 s, no real time
    with sqlite.session() as session:
        rows = {r.step_id: r for r in service.steps(session, run_id)}
        assert rows["restart"].output == f"restarting {run_id}"
        assert rows["restart"].confirmed_by == "cli:ana" and rows["better"].confirmed_by == "cli:ana"
        assert "HTTP 503" in rows["look"].output
        said = [e.kind for e in reversed(events.get_all(session, kind="runbook.*"))]
        run = service.get(session, run_id)
        assert run.state == "succeeded" and run.ended_at == clock.now()
    assert said == ["runbook.started", *["runbook.step"] * 8, "runbook.finished"]


def test_a_wait_until_that_never_holds_times_out_on_the_clock(sqlite: Store, web: LocalHttpServer) -> None:
    clock = ManualClock(START)
    run_id, inv = begin(sqlite, web, clock=clock)
    assert drive(sqlite, inv, run_id, clock, Answers(allow="yes")) == "failed"
    waits = [o for step, _, o in outcomes(sqlite, run_id) if step == "wait"]
    assert waits == ["not_yet"] * 12 + ["timed_out"]
    assert (clock.now() - START).total_seconds() == 120
    with sqlite.session() as session:
        assert service.get(session, run_id).reason == "step wait timed out"


def test_a_healthy_service_takes_the_other_branch(sqlite: Store, web: LocalHttpServer) -> None:
    web.script.routes["/health"] = Reply(200, b"ok")
    clock = ManualClock(START)
    run_id, inv = begin(sqlite, web, clock=clock)
    assert drive(sqlite, inv, run_id, clock, Answers()) == "succeeded"
    assert [s for s, _, _ in outcomes(sqlite, run_id)] == ["look", "which", "fine"]


def test_with_nobody_there_safe_steps_run_and_the_run_waits_at_the_first_unsafe_one(
        sqlite: Store, web: LocalHttpServer) -> None:
    clock = ManualClock(START)
    run_id, inv = begin(sqlite, web, clock=clock, mode="auto")
    assert drive(sqlite, inv, run_id, clock, None) == "waiting"
    assert outcomes(sqlite, run_id) == [("look", 1, "failed"), ("which", 1, "ok")]
    with sqlite.session() as session:
        run = service.get(session, run_id)
        assert run.current_step == "restart" and "not safe to run unattended" in run.waiting_for
        assert [e.kind for e in events.get_all(session, kind="runbook.waiting")] == ["runbook.waiting"]
    # a person resumes it: nothing done is done again
    web.script.routes["/health"] = Reply(200, b"ok")
    assert drive(sqlite, inv, run_id, clock, Answers(allow="yes", confirm=True)) == "succeeded"
    assert [s for s, _, _ in outcomes(sqlite, run_id)] == ["look", "which", "restart", "wait", "better",
                                                           "fine"]


def test_a_no_aborts_and_nothing_after_it_runs(sqlite: Store, web: LocalHttpServer) -> None:
    clock = ManualClock(START)
    run_id, inv = begin(sqlite, web, clock=clock)
    assert drive(sqlite, inv, run_id, clock, Answers(allow="no")) == "aborted"
    assert [s for s, _, _ in outcomes(sqlite, run_id)] == ["look", "which"]


APPROVED = """
name: drain
title: Drain the gateway
steps:
  - {id: ask, kind: approve, role: operator, prompt: drain it}
  - {id: done, kind: note, text: drained, safe: true}
"""


def test_an_approval_needs_another_person_with_the_steps_role(store: Store, web: LocalHttpServer) -> None:
    clock = ManualClock(START)
    run_id, inv = begin(store, web, APPROVED, requested_by="cli:ana", clock=clock)
    assert drive(store, inv, run_id, clock, Answers()) == "awaiting_approval"
    with store.session() as session:
        run = service.get(session, run_id)
        with pytest.raises(service.RunRefused, match="another person must approve"):
            service.approve(session, run, step_id="ask", actor="token:ana", role=Role.ADMIN,
                            now=clock.now())
        with pytest.raises(service.NotAllowed, match="needs the operator role"):
            service.approve(session, run, step_id="ask", actor="token:bob", role=Role.RESPONDER,
                            now=clock.now())
    with store.session() as session:
        service.approve(session, service.get(session, run_id), step_id="ask", actor="token:bob",
                        role=Role.OPERATOR, now=clock.now())
    assert drive(store, inv, run_id, clock, Answers()) == "succeeded"
    with store.session() as session:
        rows = service.steps(session, run_id)
        assert [(r.step_id, r.outcome, r.approved_by) for r in rows] == [("ask", "yes", "token:bob"),
                                                                         ("done", "ok", None)]
        approved = events.get_all(session, kind="runbook.approved")
        assert [e.actor for e in approved] == ["token:bob"]


def test_a_run_for_an_incident_is_on_its_timeline_and_in_its_postmortem(sqlite: Store,
                                                                        web: LocalHttpServer) -> None:
    clock = ManualClock(START)
    inv = inventory(web)
    with sqlite.session() as session:  # the incident is the gateway's; the runbook is about web
        opened = incidents.create(session, title="Checkout fails", service="gateway", severity="P1",
                                  actor="cli:ana", now=clock.now(), settings=inv.incidents)
        incident_id = opened.id
    clock.advance(60)
    web.script.routes["/health"] = Reply(200, b"ok")
    run_id, inv = begin(sqlite, web, incident=incident_id, clock=clock)
    assert drive(sqlite, inv, run_id, clock, Answers()) == "succeeded"
    with sqlite.session() as session:
        lines = [e.what for e in incidents.get_timeline(session, incident_id=incident_id, now=clock.now())
                 if e.kind.startswith("runbook.")]
        facts = incidents.postmortem_facts(session, incident_id=incident_id, settings=inv.incidents,
                                           now=clock.now())
    assert lines[0] == ("Runbook web-down run 1 started (manual) with service=web: Web does not answer")
    assert "Runbook web-down run 1: step look (check) ok: web/http: OK" in lines[1]
    assert lines[-1] == "Runbook web-down run 1 succeeded"
    draft = postmortem.render(facts)
    part = draft.split("## Runbooks run")[1].split("## ")[0]
    assert "- Run 1 of web-down by cli:ana: look ok; which ok; fine ok; succeeded" in part
