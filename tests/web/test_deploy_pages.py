"""The deploy pages through HTTP with a real store: the list (active first, then history), one
deploy (split, steps with their marks, each verdict's metrics in their units, its events), the
operator's buttons (operator role, same origin, refusals with their reason), and the service
page's link to its deploys. Deploys are made with the deploy service, their verdicts by the
analysis on synthetic intervals, on the plane's ManualClock."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.deploy import service
from opsplane.deploy.analysis import Interval, Verdict, analyse
from opsplane.deploy.models import AnalysisSettings
from opsplane.deploy.plan import PlanInput, build
from opsplane.events import service as events
from opsplane.metrics.ingest import ingest
from opsplane.metrics.scrape import ScrapeTarget
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from shop.telemetry import LATENCY_BUCKETS
from tests.web.conftest import make_token

INVENTORY = """
platform: {name: shop}
services:
  gateway:
    port: 8000
    depends_on: [catalog]
    run: {argv: [gateway], version: v1}
  catalog:
    port: 8001
    proxy: edge
    metrics_path: /metrics
    run: {argv: [catalog], version: v1}
  orders:
    port: 8002
    run: {argv: [orders], version: v1}
proxies:
  edge: {engine: nginx, port: 8080}
databases:
  postgres-main: {port: 5432}
"""
PAGES = ["/ui/deploys", "/ui/deploys/1"]


@pytest.fixture
def plane(tmp_path: Path, clock: ManualClock) -> Iterator[ControlPlane]:
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        yield ControlPlane(loads(INVENTORY), store, clock=clock)
    finally:
        store.close()


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane), follow_redirects=False)


def signed_in_as(client: TestClient, plane: ControlPlane, role: Role) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane, role, name=f"{role.value}-ana")})
    assert answer.status_code == 303, answer.text
    return client


# --- deploys as the runner leaves them ------------------------------------------------------


def interval(rng: random.Random, *, requests: int, error_ratio: float, latency: float) -> Interval:
    """One interval of a release's answers as Prometheus hands them over: `requests` with
    log-normal latencies around `latency` seconds in the shop's histogram buckets."""
    samples = [rng.lognormvariate(0, 0.25) * latency for _ in range(requests)]
    errors = sum(1 for _ in range(requests) if rng.random() < error_ratio)
    cumulative = tuple((le, float(sum(1 for s in samples if s <= le))) for le in LATENCY_BUCKETS)
    return Interval(float(requests), float(errors), sum(samples), (*cumulative, (math.inf, float(requests))))


def judged(*, canary_latency: float, requests: int = 300, final: bool = True) -> Verdict:
    """The analysis of eight intervals of a stable release at 50 ms against a canary at
    `canary_latency`."""
    rng = random.Random(3)
    stable = [interval(rng, requests=requests, error_ratio=0.002, latency=0.05) for _ in range(8)]
    canary = [interval(rng, requests=requests, error_ratio=0.002, latency=canary_latency) for _ in range(8)]
    return analyse(stable, canary, AnalysisSettings(), final=final)


def verdict_record(row: Any, verdict: Verdict, at: datetime) -> dict[str, Any]:
    """The verdict as the runner stores it on the deploy."""
    return {"step": row.step, "percent": row.plan[row.step]["percent"], "at": at.isoformat(),
            "stable": row.from_version, "canary": row.to_version, "explanation": verdict.explain(),
            **verdict.as_dict()}


def canary(plane: ControlPlane, clock: ManualClock, *, to: str = "v2", actor: str = "token:alice") -> int:
    """A canary of catalog `to` that has shifted 50 % of requests to it (52 of the 100 proving
    requests answered by v1, 48 by v2) and now analyses that step."""
    plan = build(PlanInput("canary", instances=2, proxied=True, canary_steps=(50.0, 100.0)))
    with plane.store.session() as session:
        row = service.create(session, service="catalog", environment="production", strategy="canary",
                             from_version="v1", to_version=to, plan=plan,
                             params={"proxied": True, "auto_promote": True}, approvals_needed=0,
                             actor=actor, now=clock.now())
        service.transition(session, row, "running", actor="system:deploy", now=clock.now())
        for details in ({}, {"instances": [f"catalog@{to}.1"]},
                        {"percent": 50.0, "split": {"answers": {"v1": 52, to: 48}, "failed": 0}}):
            clock.advance(5)
            service.step_done(session, row, actor="system:deploy", now=clock.now(), details=details)
        row.percent = 50.0
        row.step_started_at = clock.now()
        return row.id


def rolled_back_by_analysis(plane: ControlPlane, clock: ManualClock) -> int:
    """A canary of catalog v2-slow whose analysis at 50 % failed on latency, rolled back."""
    number = canary(plane, clock, to="v2-slow")
    clock.advance(80)
    with plane.store.session() as session:
        row = service.get(session, number)
        service.record_verdict(session, row, verdict_record(row, judged(canary_latency=0.15, final=False),
                                                            clock.now()),
                               actor="system:deploy", now=clock.now())
        service.transition(session, row, "rolling_back", actor="system:deploy", now=clock.now(),
                           reason="analysis at 50 %: latency, latency_tail, p95 failed")
        clock.advance(10)
        service.step_done(session, row, actor="system:deploy", now=clock.now(), details={"percent": 0.0})
        row.percent = 0.0
        service.transition(session, row, "rolled_back", actor="system:deploy", now=clock.now(),
                           reason=row.reason)
    return number


def rolled_out(plane: ControlPlane, clock: ManualClock) -> int:
    """A rolling deploy of gateway v2 that replaced both instances and succeeded."""
    plan = build(PlanInput("rolling", instances=2, proxied=False))
    with plane.store.session() as session:
        row = service.create(session, service="gateway", environment="production", strategy="rolling",
                             from_version="v1", to_version="v2", plan=plan, params={"proxied": False},
                             approvals_needed=0, actor="token:bob", now=clock.now())
        service.transition(session, row, "running", actor="system:deploy", now=clock.now())
        while service.steps_left(row):
            clock.advance(10)
            service.step_done(session, row, actor="system:deploy", now=clock.now())
        service.transition(session, row, "succeeded", actor="system:deploy", now=clock.now(),
                           reason="gateway runs v2")
        return row.id


def awaiting_approval(plane: ControlPlane, clock: ManualClock) -> int:
    plan = build(PlanInput("rolling", instances=1, proxied=False))
    with plane.store.session() as session:
        return service.create(session, service="orders", environment="production", strategy="rolling",
                              from_version="v1", to_version="v3", plan=plan, params={"proxied": False},
                              approvals_needed=1, actor="token:carol", now=clock.now()).id


def state_of(plane: ControlPlane, number: int) -> str:
    with plane.store.session() as session:
        return service.get(session, number).state


def section(html: str, name: str) -> str:
    start = html.index(f'id="{name}"')
    return html[start:html.index("</section>", start)]


def listed(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-deploy="(\d+)"', html)]


# --- reading --------------------------------------------------------------------------------


def test_deploy_pages_need_a_session(client: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    canary(plane, clock)
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"


def test_the_list_shows_active_deploys_first_then_history(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    slow = rolled_back_by_analysis(plane, clock)
    clock.advance(60)
    gateway = rolled_out(plane, clock)
    clock.advance(60)
    orders = awaiting_approval(plane, clock)
    clock.advance(60)
    running = canary(plane, clock)
    clock.advance(30)
    page = signed_in_as(client, plane, Role.VIEWER).get("/ui/deploys")

    assert page.status_code == 200
    assert listed(page.text) == [running, orders, gateway, slow]
    assert 'aria-current="page">Deploys' in page.text
    row = re.search(rf'<tr data-deploy="{running}".*?</tr>', page.text, re.S)
    assert row is not None
    for shown in ("catalog", "v1 → v2", "canary", "deploy-moving", "running", "50 %", "token:alice",
                  "45s so far", f'href="/ui/deploys/{running}"'):
        assert shown in row.group(0), shown
    done = re.search(rf'<tr data-deploy="{gateway}" class="finished".*?</tr>', page.text, re.S)
    assert done is not None and "100 %" in done.group(0) and "gateway runs v2" in done.group(0)
    back = re.search(rf'<tr data-deploy="{slow}".*?</tr>', page.text, re.S)
    assert back is not None and "rolled back" in back.group(0) and "0 %" in back.group(0)
    assert "latency, latency_tail, p95 failed" in back.group(0)

    only = client.get("/ui/deploys?service=catalog")
    assert listed(only.text) == [running, slow]
    assert "Deploys of catalog" in only.text


def test_a_canary_at_its_analysis_shows_the_split_its_steps_and_its_verdict(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = canary(plane, clock)
    clock.advance(70)
    with plane.store.session() as session:  # inconclusive at its end, so the step is extended
        row = service.get(session, number)
        service.record_verdict(session, row, verdict_record(row, judged(canary_latency=0.05, requests=100),
                                                            clock.now()),
                               actor="system:deploy", now=clock.now())
    page = signed_in_as(client, plane, Role.VIEWER).get(f"/ui/deploys/{number}")

    assert page.status_code == 200
    text = page.text
    assert f"Deploy {number}: catalog v1 → v2" in text
    split = section(text, "deploy-split")
    assert 'data-new-percent="50"' in split
    assert "v1 (stable) <strong>50 %</strong>" in split and "v2 (new) <strong>50 %</strong>" in split
    assert "The last shift, to 50 % at" in split and "was proved on 100 requests" in split
    assert "v1 answered 52, v2 answered 48" in split
    steps = re.findall(r'data-step="(\d+)" data-kind="(\w+)" data-mark="(\w*)"',
                       section(text, "deploy-steps"))
    assert steps == [("1", "precheck", "done"), ("2", "start", "done"), ("3", "shift", "done"),
                     ("4", "analyse", "now"), ("5", "shift", ""), ("6", "settle", ""),
                     ("7", "release", ""), ("8", "postcheck", "")]
    assert "analyse the new release against the stable one at 50 %" in text
    assert "(for 1m 10s; a verdict is due within 50s)" in text  # the default two-minute step
    verdicts = section(text, "deploy-verdicts")
    assert "verdict-inconclusive" in verdicts and "final look, 8 intervals" in verdicts
    metrics = dict(re.findall(r'<tr data-metric="(\w+)"><th scope="row">\w+</th><td><span class="badge '
                              r'verdict-(\w+)"', verdicts))
    assert metrics == {"errors": "inconclusive", "latency": "pass", "latency_tail": "inconclusive",
                       "p95": "pass"}
    errors = re.search(r'<tr data-metric="errors">.*?</tr>', verdicts, re.S)
    assert errors is not None and re.search(r"<td>0\.\d+%</td><td>0\.\d+%</td>", errors.group(0))
    assert "points" in errors.group(0) and "800 / 800" in errors.group(0)
    p95 = re.search(r'<tr data-metric="p95">.*?</tr>', verdicts, re.S)
    assert p95 is not None and re.search(r"<td>9\d\.\d ms</td>", p95.group(0)) and "ratio " in p95.group(0)
    kinds = re.findall(r"<code>(deploy\.\w+)</code>", section(text, "deploy-events"))
    assert kinds == ["deploy.verdict", "deploy.step", "deploy.step", "deploy.step", "deploy.running",
                     "deploy.requested"]
    assert section(text, "deploy-charts").count('<span class="summary">nothing measured</span>') == 2


def test_a_deploy_rolled_back_by_analysis_shows_the_failed_metrics_and_the_rollback(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = rolled_back_by_analysis(plane, clock)
    text = signed_in_as(client, plane, Role.OPERATOR).get(f"/ui/deploys/{number}").text

    assert 'data-state="rolled_back"' in text
    assert "analysis at 50 %: latency, latency_tail, p95 failed" in text
    assert 'data-step="4" data-kind="analyse" data-mark="stopped"' in text
    assert 'data-rollback-step="1" data-kind="restore" data-mark="done"' in text
    assert 'data-new-percent="0"' in text
    verdicts = section(text, "deploy-verdicts")
    assert "verdict-fail" in verdicts and "look 3, 8 intervals" in verdicts
    p95 = re.search(r'<tr data-metric="p95">.*?</tr>', verdicts, re.S)
    assert p95 is not None and "verdict-fail" in p95.group(0)
    # the ratio shown is the new release's p95 over the stable one's, as both are shown
    cells = re.search(r"<td>([\d.]+) ms</td><td>([\d.]+) ms</td><td>[^<]*</td><td>ratio ([\d.]+)</td>",
                      p95.group(0))
    assert cells is not None, p95.group(0)
    stable, new, ratio = cells.groups()
    assert float(new) / float(stable) == pytest.approx(float(ratio), abs=0.02) and float(ratio) > 2
    latency = re.search(r'<tr data-metric="latency">.*?</tr>', verdicts, re.S)
    assert latency is not None
    slower = re.search(r"P\(slower\) (0\.\d+)", latency.group(0))
    assert slower is not None and float(slower[1]) > 0.95, latency.group(0)  # nearly every request slower
    assert "Mann-Whitney" in latency.group(0)
    assert 'id="deploy-actions"' in text and "data-action=" not in text  # nothing left to do


def test_a_rolling_deploy_shows_the_share_of_instances_replaced(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    plan = build(PlanInput("rolling", instances=2, proxied=False))
    with plane.store.session() as session:
        row = service.create(session, service="gateway", environment="production", strategy="rolling",
                             from_version="v1", to_version="v2", plan=plan, params={"proxied": False},
                             approvals_needed=0, actor="token:bob", now=clock.now())
        service.transition(session, row, "running", actor="system:deploy", now=clock.now())
        service.step_done(session, row, actor="system:deploy", now=clock.now())
        service.step_done(session, row, actor="system:deploy", now=clock.now(), details={"instance": 0})
        number = row.id
    text = signed_in_as(client, plane, Role.VIEWER).get(f"/ui/deploys/{number}").text
    assert "50 % of gateway's instances run v2" in text
    assert "A rolling deploy has no analysis step" in text
    assert "gateway is not scraped (no metrics_path), so there is no chart" in text


def test_unknown_deploys_are_a_404_page(client: TestClient, plane: ControlPlane) -> None:
    signed_in_as(client, plane, Role.OPERATOR)
    for path in ("/ui/deploys/7", "/ui/deploys/x", "/ui/deploys/" + "9" * 30):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "No deploy" in answer.text
    assert client.post("/ui/deploys/7/abort").status_code == 404


# --- operating ------------------------------------------------------------------------------


def test_a_viewer_sees_no_buttons_and_may_not_abort(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = canary(plane, clock)
    signed_in_as(client, plane, Role.VIEWER)
    assert "data-action=" not in client.get(f"/ui/deploys/{number}").text
    assert client.post(f"/ui/deploys/{number}/abort").status_code == 403
    responder = signed_in_as(client, plane, Role.RESPONDER)
    assert responder.post(f"/ui/deploys/{number}/abort").status_code == 403
    assert state_of(plane, number) == "running"


def test_an_operator_aborts_from_the_page_as_themself(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = canary(plane, clock)
    signed_in_as(client, plane, Role.OPERATOR)
    page = client.get(f"/ui/deploys/{number}").text
    assert re.findall(r'data-action="(\w+)"', page) == ["promote", "pause", "abort"]
    assert f'action="/ui/deploys/{number}/abort"' in page

    answer = client.post(f"/ui/deploys/{number}/abort")
    assert answer.status_code == 303 and answer.headers["location"] == f"/ui/deploys/{number}"
    assert state_of(plane, number) == "rolling_back"
    with plane.store.session() as session:
        [event] = events.get_all(session, kind="deploy.rolling_back")
    assert event.actor == "token:operator-ana" and event.details["reason"] == "aborted by token:operator-ana"
    after = client.get(f"/ui/deploys/{number}").text
    assert 'data-state="rolling_back"' in after and "aborted by token:operator-ana" in after
    assert 'data-rollback-step="1" data-kind="restore" data-mark="now"' in after


def test_an_action_the_state_refuses_shows_the_page_with_the_reason(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = canary(plane, clock)
    signed_in_as(client, plane, Role.OPERATOR)
    refused = client.post(f"/ui/deploys/{number}/resume")
    assert refused.status_code == 409
    assert f"deploy {number} is running; resume needs it paused" in refused.text
    assert client.post(f"/ui/deploys/{number}/pause").status_code == 303
    assert state_of(plane, number) == "paused"
    page = client.get(f"/ui/deploys/{number}").text
    assert re.findall(r'data-action="(\w+)"', page) == ["promote", "resume", "abort"]
    assert client.post(f"/ui/deploys/{number}/resume").status_code == 303
    assert state_of(plane, number) == "running"
    assert client.post(f"/ui/deploys/{number}/rollback").status_code == 404  # not an action


def test_approving_needs_another_operator_than_the_one_who_asked(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = awaiting_approval(plane, clock)
    signed_in_as(client, plane, Role.OPERATOR)
    page = client.get(f"/ui/deploys/{number}").text
    assert re.findall(r'data-action="(\w+)"', page) == ["approve", "abort"]
    assert "0 of 1 approvals so far" in page
    assert client.post(f"/ui/deploys/{number}/approve").status_code == 303
    assert state_of(plane, number) == "queued"
    assert "operator-ana" in client.get(f"/ui/deploys/{number}").text


def test_a_form_posted_from_another_site_changes_nothing(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = canary(plane, clock)
    signed_in_as(client, plane, Role.OPERATOR)
    refused = client.post(f"/ui/deploys/{number}/abort", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert "sent from another site" in refused.text
    other = client.post(f"/ui/deploys/{number}/abort", headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
    assert state_of(plane, number) == "running"


def test_the_service_page_links_to_the_services_deploys(client: TestClient, plane: ControlPlane) -> None:
    signed_in_as(client, plane, Role.VIEWER)
    assert 'href="/ui/deploys?service=catalog"' in client.get("/ui/services/catalog").text
    assert "/ui/deploys?service=postgres-main" not in client.get("/ui/services/postgres-main").text


# --- charts ---------------------------------------------------------------------------------


def scrape_releases(plane: ControlPlane, at: float, seconds: float) -> None:
    """catalog's two releases as serve scrapes them, `seconds` into a deploy: v1 answering
    20 requests a second, half under 50 ms, all under 100 ms; v2 10 a second since the deploy's
    first minute, each 200 to 350 ms; and the platform's own /health requests on both."""
    assert plane.samples is not None
    for release, port in (("v1", 8101), ("v2", 8102)):
        started = 60.0 if release == "v2" else 0.0
        if seconds < started:
            continue
        served = (seconds - started) * (20 if release == "v1" else 10)
        buckets = (((0.05, 0.5), (0.1, 1.0), (0.2, 1.0), (0.35, 1.0), (math.inf, 1.0)) if release == "v1"
                   else ((0.05, 0.0), (0.1, 0.0), (0.2, 0.0), (0.35, 1.0), (math.inf, 1.0)))
        text = (f'http_requests_total{{route="/products",status="200",version="{release}"}} {served}\n'
                f'http_requests_total{{route="/health",status="200",version="{release}"}} {seconds * 50}\n')
        for le, share in buckets:
            bound = "+Inf" if math.isinf(le) else f"{le:g}"
            text += (f'http_request_duration_seconds_bucket{{route="/products",version="{release}",'
                     f'le="{bound}"}} {share * served}\n')
        ingest(plane.samples, ScrapeTarget("catalog", f"http://127.0.0.1:{port}/metrics", 5.0, 1.0),
               "production", text, at=at, duration=0.01)


def test_the_deploy_page_charts_each_release_s_requests_and_p95(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    plane.started_at = clock.now()
    clock.advance(120)
    number = canary(plane, clock)  # at 120 s; its 50 % shift 15 s later
    began = clock.now().timestamp() - 15
    for seconds in range(0, 181, 5):
        scrape_releases(plane, began + seconds, seconds)
    clock.advance(180 - 15)
    page = signed_in_as(client, plane, Role.VIEWER).get(f"/ui/deploys/{number}").text

    figures = r'<figure class="timechart" data-chart="([a-z0-9-]+)">(.*?)</figure>'
    found = dict(re.findall(figures, page, re.S))
    assert list(found) == ["release-requests", "release-p95"]
    assert "v1 (stable) last 20/s" in found["release-requests"]
    assert "v2 (new) last 10/s" in found["release-requests"]
    assert '<polyline class="line s0"' in found["release-requests"]
    assert re.search(r"v1 \(stable\) last \d\d ms", found["release-p95"])
    assert re.search(r"v2 \(new\) last 3\d\d ms", found["release-p95"])
