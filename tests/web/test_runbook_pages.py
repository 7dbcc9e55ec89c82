"""The runbook pages through HTTP with a real store (SQLite and PostgreSQL): the runbooks of the
inventory's directory and the recent runs, one run with each step's attempt, the people who
answered and what it waits for, one runbook's steps, and an incident's runs. Runs are started
and driven by the runbook runner against real parts: catalog's health check asks an HTTP server
that answers 503, commands are real programs; time is the plane's ManualClock."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.incidents import service as incidents
from opsplane.runbooks import runner, service
from opsplane.runbooks.flows import LivePlatform
from opsplane.runbooks.loader import catalog
from opsplane.runbooks.models import render
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.http_servers import LocalHttpServer, Reply
from tests.web.conftest import make_token

# Prints a line that is HTML, then 60 lines: the page shows the last 40 as text.
LOGS = "print('<script>alert(1)</script>'); [print(f'log line {i}') for i in range(60)]"
CATALOG_DOWN = f"""
name: catalog-down
title: Catalog does not answer
description: The catalog fails its health check; look, restart with an operator's approval.
for: {{alerts: [CheckFailing], services: [catalog]}}
parameters:
  service: {{of: service, default: catalog, description: the service that fails}}
steps:
  - {{id: look, kind: check, check: "${{service}}/http", safe: true, title: "Does it answer?"}}
  - id: which
    kind: decide
    step: look
    when: {{ok: fine, failed: logs}}
  - id: logs
    kind: command
    title: Its last log lines
    argv: [{sys.executable}, -c, "{LOGS}"]
    safe: true
  - {{id: go-ahead, kind: approve, role: operator, prompt: "Restart the catalog?"}}
  - id: restart
    kind: command
    argv: [{sys.executable}, -c, "print('restarted ${{service}}')"]
  - {{id: better, kind: confirm, prompt: "Do shoppers see products again?", next: end}}
  - {{id: fine, kind: note, text: catalog answers; nothing to do, safe: true}}
"""
SESSIONS_FLUSH = """
name: sessions-flush
title: Sessions are corrupt
steps:
  - {id: hits, kind: query, promql: 'sum(rate(redis_keyspace_hits_total[5m]))', safe: true}
  - {id: quiet, kind: action, action: silence, matchers: ['service="sessions"'], duration: 30m}
  - {id: flush, kind: action, action: flush-cache, target: sessions}
  - {id: scale, kind: action, action: scale, target: catalog, instances: 3, idempotent: true}
"""
PAGES = ["/ui/runbooks", "/ui/runbooks/catalog-down", "/ui/runbooks/runs/1"]


class Person:
    """Someone at the terminal who says yes to everything."""

    actor = "cli:ana"

    def confirm(self, run: Any, step: Any) -> bool:
        return True

    def allow(self, run: Any, step: Any, plan: str) -> str:
        return "yes"

    def typed(self, run: Any, step: Any, word: str) -> bool:
        return True

    def happened(self, run: Any, step: Any, attempt: int) -> str:
        return "yes"


@pytest.fixture
def catalog_server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer({"/health": Reply(503, b"down")}) as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def plane(store: Store, clock: ManualClock, catalog_server: LocalHttpServer, tmp_path: Path) -> ControlPlane:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "catalog-down.yaml").write_text(CATALOG_DOWN)
    (tmp_path / "runbooks" / "sessions-flush.yaml").write_text(SESSIONS_FLUSH)
    inventory = loads(f"""
platform: {{name: shop}}
services:
  catalog:
    url: http://127.0.0.1:{catalog_server.port}
    checks: [{{type: http, path: /health}}]
caches:
  sessions: {{port: 6379}}
runbooks: {{dir: runbooks}}
""")
    return ControlPlane(inventory, store, clock=clock)


@pytest.fixture
def client(plane: ControlPlane, tmp_path: Path) -> TestClient:
    return TestClient(create_app(plane, inventory_dir=tmp_path), follow_redirects=False)


def signed_in(client: TestClient, plane: ControlPlane, role: Role = Role.VIEWER) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane, role, name=f"{role.value}-rb")})
    assert answer.status_code == 303, answer.text
    return client


def start(plane: ControlPlane, tmp_path: Path, *, mode: str, requested_by: str,
          incident: int | None = None) -> int:
    loaded = catalog(plane.inventory, tmp_path)["catalog-down"]
    return runner.start(plane.store, runbook=render(loaded.runbook, {"service": "catalog"}),
                        parameters={"service": "catalog"}, requested_by=requested_by, mode=mode,
                        clock=plane.clock, incident_id=incident)


def drive(plane: ControlPlane, tmp_path: Path, run_id: int, person: Any) -> str:
    clock = plane.clock
    platform = LivePlatform(plane.inventory, base_dir=tmp_path, store=plane.store, clock=clock)
    driver = runner.Runner(plane.store, platform, clock=clock, actor="system:runbooks", person=person,
                           sleep=lambda seconds: None)
    try:
        return driver.drive(run_id)
    finally:
        driver.close()


def approve(plane: ControlPlane, run_id: int, actor: str) -> None:
    with plane.store.session() as session:
        service.approve(session, service.get(session, run_id), step_id="go-ahead", actor=actor,
                        role=Role.OPERATOR, now=plane.clock.now())


@pytest.fixture
def runs(plane: ControlPlane, clock: ManualClock, tmp_path: Path) -> dict[str, int]:
    """INC-1 on catalog; run 1: unattended for INC-1, waiting for the operator's approval after
    looking (503), deciding and printing the logs; run 2, a person at the terminal: approved by
    token:ben, restarted and confirmed, 4 minutes after run 1 began."""
    with plane.store.session() as session:
        incidents.create(session, title="catalog is down", service="catalog", severity="P1", actor="test",
                         now=clock.now(), settings=plane.inventory.incidents)
    auto = start(plane, tmp_path, mode="auto", requested_by="token:ana", incident=1)
    assert drive(plane, tmp_path, auto, None) == "awaiting_approval"
    clock.advance(240)
    manual = start(plane, tmp_path, mode="manual", requested_by="cli:ana")
    assert drive(plane, tmp_path, manual, Person()) == "awaiting_approval"
    clock.advance(30)
    approve(plane, manual, "token:ben")
    assert drive(plane, tmp_path, manual, Person()) == "succeeded"
    clock.advance(60)
    return {"auto": auto, "manual": manual}


def text(page: str) -> str:
    """The page's words as a reader sees them: tags dropped, entities read, spaces squeezed."""
    return unescape(re.sub(r"\s+([,.;:)])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))))


def part(html: str, pattern: str) -> str:
    found = re.search(pattern, html, re.S)
    assert found, pattern
    return found.group(0)


def test_runbook_pages_need_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"


def test_a_viewer_reads_every_page_with_the_nonce_and_no_other_script(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    signed_in(client, plane, Role.VIEWER)
    for path in [*PAGES, "/ui/runbooks/runs/2", "/ui/incidents/1"]:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"])
        assert nonce, path
        scripts = re.findall(r"<script[^>]*>", answer.text)
        assert scripts == [f'<script nonce="{nonce.group(1)}">'], (path, scripts)
        assert " on" not in " ".join(re.findall(r"<[a-z]+ [^>]*\bon[a-z]+=", answer.text)), path
        if path.startswith("/ui/runbooks"):
            assert '<a href="/ui/runbooks" aria-current="page">Runbooks</a>' in answer.text, path


def test_the_list_shows_each_runbook_and_the_recent_runs(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/runbooks").text
    row = text(part(html, r'<tr data-runbook="catalog-down">.*?</tr>'))
    assert "catalog-down Catalog does not answer" in row
    assert "alerts CheckFailing" in row and "services catalog" in row
    assert "7 4 of 7: look which logs fine" in row and "service" in row
    flush = text(part(html, r'<tr data-runbook="sessions-flush">.*?</tr>'))
    assert "1 of 4: hits" in flush  # the silence and scale are not safe; a flush never is
    auto = part(html, rf'<tr data-run="{runs["auto"]}".*?</tr>')
    assert '<a href="/ui/incidents/1">INC-1</a>' in auto
    assert "badge run-waiting" in auto and "awaiting approval" in auto and "at go-ahead" in auto
    assert "token:ana" in auto and ">auto<" in auto and "5m 30s so far" in text(auto)
    manual = part(html, rf'<tr data-run="{runs["manual"]}".*?</tr>')
    assert "badge run-good" in manual and "succeeded" in manual and "cli:ana" in manual
    assert ">manual<" in manual and "<td>-</td>" in manual and "30s" in manual  # no incident
    assert html.index(f'data-run="{runs["manual"]}"') < html.index(f'data-run="{runs["auto"]}"')


def test_a_waiting_run_says_what_it_waits_for_and_the_commands_to_go_on(
        client: TestClient, plane: ControlPlane, runs: dict[str, int], tmp_path: Path) -> None:
    signed_in(client, plane)
    path = f"/ui/runbooks/runs/{runs['auto']}"
    html = client.get(path).text
    head = part(html, r'<div id="run-head" data-live>.*?</dl>')
    words = text(head)
    assert "Waits for approval by an operator other than token:ana." in words
    assert (f"opsplane runbook approve {runs['auto']} --step go-ahead\n"
            f"opsplane runbook resume {runs['auto']}") in head
    assert '<a href="/ui/incidents/1">INC-1</a>' in head and "service=catalog" in words
    assert "Asked by token:ana" in words and "Approved by -" in words
    steps = re.findall(r'<li class="run-step [^"]*" data-step="([^"]+)" data-attempt="(\d+)" '
                       r'data-outcome="([^"]+)"', html)
    assert steps == [("look", "1", "failed"), ("which", "1", "ok"), ("logs", "1", "ok"),
                     ("go-ahead", "0", "waiting")]
    look = text(part(html, r'data-step="look".*?</li>'))
    assert "check catalog/http" in look and "HTTP 503" in look
    assert 'id="run-steps" data-live' in html  # the parts that change reload while it runs

    # approved: it waits for a person to let the unsafe restart run
    approve(plane, runs["auto"], "token:ben")
    assert drive(plane, tmp_path, runs["auto"], None) == "waiting"
    html = client.get(path).text
    words = text(part(html, r'<div id="run-head".*?</dl>'))
    assert "Waits for a person: step restart is not safe to run unattended" in words
    assert f"opsplane runbook resume {runs['auto']}" in html and "runbook approve" not in html
    assert "Approved by token:ben" in words
    approval = text(part(html, r'data-step="go-ahead".*?</li>'))
    assert "yes" in approval and "approved by token:ben" in approval


def test_a_step_output_is_text_in_a_pre_and_only_its_end_is_shown(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    html = signed_in(client, plane).get(f"/ui/runbooks/runs/{runs['auto']}").text
    logs = part(html, r'data-step="logs".*?</li>')
    output = part(logs, r'<pre class="step-output">.*?</pre>')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in output  # 61 lines: the first is left out
    assert "… 21 earlier lines left out\nlog line 20\n" in output and output.endswith("log line 59</pre>")
    assert "<script>alert" not in html


def test_html_in_an_output_is_shown_as_text(client: TestClient, plane: ControlPlane,
                                            runs: dict[str, int]) -> None:
    with plane.store.session() as session:  # an output short enough to be shown whole
        row = next(r for r in service.steps(session, runs["manual"]) if r.step_id == "logs")
        row.output = "<script>alert(1)</script>\n<b>bold</b> & done"
    html = signed_in(client, plane).get(f"/ui/runbooks/runs/{runs['manual']}").text
    output = part(part(html, r'data-step="logs".*?</li>'), r'<pre class="step-output">.*?</pre>')
    assert output == ('<pre class="step-output">&lt;script&gt;alert(1)&lt;/script&gt;\n'
                      "&lt;b&gt;bold&lt;/b&gt; &amp; done</pre>")
    assert "<script>alert" not in html


def test_a_finished_run_shows_who_answered_and_what_did_not_run(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    html = signed_in(client, plane).get(f"/ui/runbooks/runs/{runs['manual']}").text
    head = text(part(html, r'<div id="run-head">.*?</dl>'))
    assert "succeeded manual run of catalog-down, took 30s" in head
    assert "Incident none" in head and "Asked by cli:ana" in head and "Approved by token:ben" in head
    assert "Waits" not in head and "runbook resume" not in html
    assert "data-live" not in part(html, r"<main>.*?</main>").replace('id="updated" data-live', "")
    steps = re.findall(r'data-step="([^"]+)" data-attempt="(\d+)" data-outcome="([^"]+)"', html)
    assert steps == [("look", "1", "failed"), ("which", "1", "ok"), ("logs", "1", "ok"),
                     ("go-ahead", "1", "yes"), ("restart", "1", "ok"), ("better", "1", "yes")]
    restart = text(part(html, r'data-step="restart".*?</li>'))
    assert "confirmed by cli:ana" in restart and "restarted catalog" in restart
    assert "started 2026-01-06 10:04:30 UTC, ended 2026-01-06 10:04:30 UTC, 0s" in restart
    better = text(part(html, r'data-step="better".*?</li>'))
    assert "ask: Do shoppers see products again?" in better and "confirmed by cli:ana" in better
    assert text(part(html, r'<ul class="not-run">.*?</ul>')) == " fine note "


def test_a_runbooks_page_says_what_each_step_does(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    signed_in(client, plane)
    html = client.get("/ui/runbooks/catalog-down").text
    assert "opsplane runbook run catalog-down --param service=catalog" in html
    assert text(part(html, r'<tr data-parameter="service">.*?</tr>')) == \
        " service service catalog the service that fails "
    look = text(part(html, r'<tr data-step="look".*?</tr>'))
    assert "check ${service}/http" in look and "if failed continue" in look and "safe" in look
    which = text(part(html, r'<tr data-step="which".*?</tr>'))
    assert "when ok fine when failed logs otherwise fail" in which and "(its branches)" in which
    logs = part(html, r'<tr data-step="logs".*?</tr>')
    assert f"<code>{sys.executable} -c " in logs and "timeout 1m" in text(logs)
    approval = text(part(html, r'<tr data-step="go-ahead".*?</tr>'))
    assert "needs a person approval by an operator other than the requester" in approval
    assert "asks Restart the catalog?" in approval
    restart = text(part(html, r'<tr data-step="restart".*?</tr>'))
    assert "needs a person a person's go-ahead: not safe unattended" in restart
    assert "better" in restart  # where it leads
    recent = part(html, r'<section id="runbook-runs" data-live.*?</section>')
    assert re.findall(r'data-run="(\d+)"', recent) == [str(runs["manual"]), str(runs["auto"])]

    flush = client.get("/ui/runbooks/sessions-flush").text
    assert "<code>sum(rate(redis_keyspace_hits_total[5m]))</code>" in flush
    quiet = text(part(flush, r'<tr data-step="quiet".*?</tr>'))
    assert 'matchers service="sessions" for 30m' in quiet
    cache = text(part(flush, r'<tr data-step="flush".*?</tr>'))
    assert "target sessions" in cache and "a person typing the cache's name" in cache
    scale = text(part(flush, r'<tr data-step="scale".*?</tr>'))
    assert "scale catalog to 3 instances" in scale and "instances 3" in scale and "idempotent" in scale
    assert "opsplane runbook run sessions-flush<" in flush and "has not run yet" in flush


def test_the_incident_page_lists_its_runbook_runs(
        client: TestClient, plane: ControlPlane, runs: dict[str, int]) -> None:
    html = signed_in(client, plane).get("/ui/incidents/1").text
    section = part(html, r'<section id="incident-runbooks" data-live>.*?</section>')
    assert re.findall(r'data-run="(\d+)"', section) == [str(runs["auto"])]
    assert f'<a href="/ui/runbooks/runs/{runs["auto"]}">' in section
    assert '<a href="/ui/runbooks/catalog-down">catalog-down</a>' in section
    with plane.store.session() as session:
        incidents.create(session, title="checkout slow", service="catalog", severity="P3", actor="test",
                         now=plane.clock.now(), settings=plane.inventory.incidents)
    other = client.get("/ui/incidents/2").text
    assert "No runbook has run for INC-2" in other and "--incident 2" in other


@pytest.mark.parametrize(("path", "heading"), [
    ("/ui/runbooks/runs/99", "No runbook run 99"), ("/ui/runbooks/runs/nine", "No runbook run nine"),
    ("/ui/runbooks/runs/99999999999999999999999", "No runbook run 99999999999999999999999"),
    ("/ui/runbooks/nope", "No runbook nope")])
def test_a_missing_run_or_runbook_is_a_404_page(client: TestClient, plane: ControlPlane, path: str,
                                               heading: str) -> None:
    answer = signed_in(client, plane).get(path)
    assert answer.status_code == 404
    assert f"<h1>{heading}</h1>" in answer.text and '<a href="/ui/runbooks">' in answer.text


def test_runbook_files_with_problems_are_named_with_their_line(
        client: TestClient, plane: ControlPlane, tmp_path: Path) -> None:
    (tmp_path / "runbooks" / "broken.yaml").write_text(
        "name: broken\ntitle: Broken\nsteps:\n  - {id: a, kind: chek}\n")
    html = signed_in(client, plane).get("/ui/runbooks").text
    assert "The runbook files have problems" in html
    problems = text(part(html, r'<ul class="problems">.*?</ul>'))
    assert f"{tmp_path}/runbooks/broken.yaml:4" in problems and "unknown step kind 'chek'" in problems
    assert "No run yet" in html
    assert client.get("/ui/runbooks/catalog-down").status_code == 404


def test_a_step_under_way_runs_and_one_whose_process_died_reads_started_not_done(
        client: TestClient, plane: ControlPlane, clock: ManualClock, tmp_path: Path) -> None:
    run_id = start(plane, tmp_path, mode="manual", requested_by="cli:ana")
    with plane.store.session() as session:
        run = service.get(session, run_id)
        step = service.runbook_of(run).step("look")
        service.start_step(session, run, step=step, attempt=1, holder="ops-1:4242", confirmed_by=None,
                           now=clock.now())
    clock.advance(75)
    signed_in(client, plane)
    html = client.get(f"/ui/runbooks/runs/{run_id}").text
    look = part(html, r'<li class="run-step [^"]*" data-step="look".*?</li>')
    assert 'data-outcome="now"' in look and "badge run-moving" in look
    assert "started 2026-01-06 10:00:00 UTC, 1m 15s so far" in text(look)
    assert "running for 1m 15s, at step look" in text(part(html, r'<div id="run-head".*?</p>'))
    assert "runbook resume" not in html  # it runs: nobody needs to take it on

    with plane.store.session() as session:  # its driver died; the next one waits for a person
        service.wait(session, service.get(session, run_id), step_id="look", actor="cli:ana",
                     now=clock.now(), why="a person to say whether step look happened")
    html = client.get(f"/ui/runbooks/runs/{run_id}").text
    look = part(html, r'<li class="run-step [^"]*" data-step="look".*?</li>')
    assert 'data-outcome="cut"' in look and "started, not done" in look and "badge run-bad" in look
    assert "Waits for a person to say whether step look happened." in text(html)
    assert f"opsplane runbook resume {run_id}</pre>" in html.replace("\n</pre>", "</pre>")
