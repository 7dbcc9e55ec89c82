"""The deploy state machine over a real store (SQLite and PostgreSQL): steps in order under
claims, verdicts, rollbacks by criteria, pauses, operator actions, and resuming after a holder
dies mid-step without doing any finished step twice.

The world is a recording `Platform` (the drivers behind the real one are tested against real
nginx, HAProxy and processes in tests/drivers and tests/integration); what is under test here is
what the deploy decides and records.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from opsplane.clock import ManualClock
from opsplane.deploy import service
from opsplane.deploy.analysis import Interval
from opsplane.deploy.models import DeploySettings
from opsplane.deploy.plan import PlanInput, build
from opsplane.deploy.runner import LEASE, RENEW_WITHIN, Runner, StepFailed
from opsplane.events.tables import Event
from opsplane.store import Store, claims
from tests.support.polling import wait_for

START = datetime(2026, 12, 8, 11, 0, tzinfo=UTC)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def interval(rng: random.Random, *, requests: int, error_ratio: float, latency: float) -> Interval:
    """One interval of `requests` with latencies around `latency` seconds."""
    samples = [rng.lognormvariate(0, 0.25) * latency for _ in range(requests)]
    errors = sum(1 for _ in range(requests) if rng.random() < error_ratio)
    cumulative = tuple((le, float(sum(1 for s in samples if s <= le))) for le in BUCKETS)
    return Interval(requests=float(requests), errors=float(errors), latency_sum=sum(samples),
                    buckets=(*cumulative, (float("inf"), float(requests))))


class RecordingPlatform:
    """Does nothing to the world, remembers every change asked of it, and answers the analysis
    with intervals drawn for the stable and the new release."""

    def __init__(self, *, canary_errors: float = 0.001, canary_latency: float = 0.05,
                 requests: int = 200, instances: int = 2) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.main = {i: "v1" for i in range(instances)}
        self.extra: dict[str, int] = {}
        self.release = "v1"
        self.canary_errors = canary_errors
        self.canary_latency = canary_latency
        self.requests = requests
        self.blocked: list[str] = []
        self.fail_start: str | None = None
        self.incidents: list[str] = []
        self.rng = random.Random(7)

    def blocking(self, service: str) -> list[str]:
        return list(self.blocked)

    def main_versions(self, service: str) -> dict[int, str | None]:
        return dict(self.main)

    def start(self, service: str, version: str, instances: int) -> list[str]:
        if self.fail_start:
            raise StepFailed(self.fail_start)
        self.calls.append(("start", version, instances))
        self.extra[version] = instances
        return [f"{service}@{version}.{i}" for i in range(instances)]

    def stop_extra(self, service: str, version: str) -> None:
        self.calls.append(("stop_extra", version))
        self.extra.pop(version, None)

    def smoke(self, service: str, version: str) -> list[str]:
        return []

    def shift(self, service: str, version: str, percent: float, *,
              drained: Sequence[int] = ()) -> dict[str, Any]:
        self.calls.append(("shift", percent, tuple(drained)))
        return {"answers": {}}

    def replace(self, service: str, index: int, version: str) -> None:
        self.calls.append(("replace", index, version))
        self.main[index] = version

    def set_release(self, service: str, version: str) -> None:
        self.calls.append(("release", version))
        self.release = version

    def healthy(self, service: str) -> str | None:
        return None

    def extra_healthy(self, service: str, version: str) -> str | None:
        return None if self.extra.get(version) else f"no instance of {version} runs"

    def intervals(self, service: str, versions: Sequence[str], start: datetime, end: datetime,
                  interval_s: float) -> dict[str, list[Interval]]:
        count = int((end - start).total_seconds() // interval_s)
        stable, canary = versions
        return {
            stable: [interval(self.rng, requests=self.requests, error_ratio=0.001, latency=0.05)
                     for _ in range(count)],
            canary: [interval(self.rng, requests=self.requests, error_ratio=self.canary_errors,
                              latency=self.canary_latency) for _ in range(count)],
        }

    def p0_alerts(self, service: str, since: datetime) -> list[str]:
        return []

    def open_incident(self, session: Any, deploy: Any, reason: str, severity: str) -> int | None:
        self.incidents.append(reason)
        return len(self.incidents)


def ask(store: Store, strategy: str = "canary", *, instances: int = 2, approvals: int = 0,
        params: dict[str, Any] | None = None) -> int:
    steps = build(PlanInput(strategy=strategy, instances=instances, proxied=True, canary_steps=(10, 50, 100),
                            keep_previous=30))
    with store.session() as session:
        row = service.create(session, service="catalog", environment="production", strategy=strategy,
                             from_version="v1", to_version="v2", plan=steps,
                             params={"proxied": True, "auto_promote": True, **(params or {})},
                             approvals_needed=approvals, actor="cli:ana", now=START)
        return row.id


def settings(**canary: Any) -> DeploySettings:
    return DeploySettings.model_validate({"canary": {"steps": [10, 50, 100], "step_duration": "60s",
                                                     "interval": "10s", **canary}})


def drive(runner: Runner, clock: ManualClock, deploy_id: int, store: Store, *, rounds: int = 200,
          tick: float = 10.0) -> str:
    """Rounds every `tick` seconds until the deploy stops moving on its own; its state."""
    for _ in range(rounds):
        runner.advance(deploy_id)
        with store.session() as session:
            state = service.get(session, deploy_id).state
        if state not in service.ADVANCING and state != "queued":
            return state
        clock.advance(tick)
    return state


def events(store: Store, deploy_id: int) -> list[Event]:
    with store.session() as session:
        rows = session.scalars(select(Event).where(Event.target == f"deploy:{deploy_id}").order_by(Event.id))
        return list(rows)


def test_a_good_canary_walks_its_shares_and_settles_on_the_new_release(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "succeeded"
    shifts = [c[1] for c in platform.calls if c[0] == "shift"]
    assert shifts[:3] == [10.0, 50.0, 100.0] and shifts[-1] == 0.0  # back onto its own, now v2
    assert platform.main == {0: "v2", 1: "v2"} and platform.release == "v2" and not platform.extra
    with store.session() as session:
        row = service.get(session, deploy_id)
        decided = [(v["percent"], v["outcome"]) for v in row.verdicts if v["outcome"] != "inconclusive"]
        assert decided == [(10, "pass"), (50, "pass")]  # an inconclusive look only extends a step
        assert row.active_service is None  # the next deploy of catalog may start
    kinds = [e.kind for e in events(store, deploy_id)]
    assert kinds[0] == "deploy.requested" and kinds[-1] == "deploy.succeeded"
    assert kinds.count("deploy.step") == len(build(PlanInput("canary", 2, True, (10, 50, 100))))


def test_a_canary_with_five_percent_errors_is_rolled_back_and_pages(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform(canary_errors=0.05)
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "rolled_back"
    assert platform.main == {0: "v1", 1: "v1"} and platform.release == "v1" and not platform.extra
    assert ("shift", 50.0, ()) not in platform.calls  # never got past its first share
    assert len(platform.incidents) == 1 and "errors" in platform.incidents[0]
    with store.session() as session:
        row = service.get(session, deploy_id)
        assert row.verdicts[-1]["outcome"] == "fail"
        assert row.incident_id == 1 and "analysis at 10 %" in row.reason


def test_a_slower_canary_is_rolled_back_on_latency(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform(canary_latency=0.35)
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "rolled_back"
    with store.session() as session:
        failed = [m["name"] for m in service.get(session, deploy_id).verdicts[-1]["metrics"]
                  if m["outcome"] == "fail"]
    assert any("latency" in name for name in failed)


def test_too_little_traffic_extends_the_step_then_pauses_and_never_decides(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform(requests=1)
    runner = Runner(settings(max_extensions=1), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "paused"
    with store.session() as session:
        row = service.get(session, deploy_id)
        assert "inconclusive" in row.reason
        assert {v["outcome"] for v in row.verdicts} == {"inconclusive"}
    assert ("shift", 50.0, ()) not in platform.calls and platform.release == "v1"
    kinds = [e.kind for e in events(store, deploy_id)]
    assert "deploy.rolling_back" not in kinds


def test_a_failing_start_rolls_back_with_the_reason(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    platform.fail_start = "the migration of v2 failed: exit 1"
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "rolled_back"
    with store.session() as session:
        assert "migration" in service.get(session, deploy_id).reason
    assert not any(c[0] == "shift" and c[1] > 0 for c in platform.calls)


def test_an_open_p1_incident_holds_the_deploy_before_anything_changes(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    platform.blocked = ["incident 4 (P1) is open on orders"]
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "paused"
    assert platform.calls == []
    with store.session() as session:
        assert "incident 4" in service.get(session, deploy_id).reason


def test_a_holder_that_dies_mid_step_is_followed_without_repeating_done_steps(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    first = Runner(settings(), platform, store.session, clock=clock, holder="first")
    deploy_id = ask(store)
    for _ in range(3):  # precheck, start, shift 10 %
        first.advance(deploy_id)
    assert [c[0] for c in platform.calls] == ["start", "shift"]

    class Dies(Exception):
        pass

    def die(*args: Any, **kwargs: Any) -> None:
        raise Dies

    original = platform.intervals
    platform.intervals = die  # type: ignore[method-assign,assignment]
    with pytest.raises(Dies):
        first.advance(deploy_id)  # claims the analysis step, then dies before recording it
    platform.intervals = original  # type: ignore[method-assign]

    second = Runner(settings(), platform, store.session, clock=clock, holder="second")
    assert second.advance(deploy_id) == 0  # the first holder's lease still runs
    clock.advance(61)
    assert drive(second, clock, deploy_id, store) == "succeeded"
    assert [c for c in platform.calls if c[0] == "start"] == [("start", "v2", 1)]  # started once
    steps = [e.details["step"] for e in events(store, deploy_id) if e.kind == "deploy.step"]
    assert steps == sorted(set(steps))  # every step recorded once, in order


def test_a_step_that_outlasts_its_lease_keeps_its_claim_until_it_is_recorded(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="first")
    deploy_id = ask(store)
    runner.advance(deploy_id)  # precheck
    key = f"deploy:{deploy_id}:step:1"
    taken_by_another: list[object] = []
    starting = platform.start

    def expires_at() -> datetime:
        with store.session() as session:
            claim = session.get(claims.WorkClaim, key)
            assert claim is not None
            return claim.expires_at

    def slow_start(service_name: str, version: str, instances: int) -> list[str]:
        for _ in range(3):  # three times the part of the lease left when it is renewed
            clock.advance(RENEW_WITHIN)
            wait_for(lambda: expires_at() > clock.now() + timedelta(seconds=RENEW_WITHIN),
                     "the claim renewed while the step runs", timeout=10)
        with store.session() as session:
            taken_by_another.append(claims.take(session, key, holder="second", now=clock.now(), lease=LEASE))
        return starting(service_name, version, instances)

    platform.start = slow_start  # type: ignore[method-assign,assignment]
    try:
        assert runner.advance(deploy_id) == 1
    finally:
        runner.close()
    assert taken_by_another == [None]
    done = [e.details["kind"] for e in events(store, deploy_id) if e.kind == "deploy.step"]
    assert done == ["precheck", "start"]


def test_operator_actions_follow_the_state_machine(store: Store) -> None:
    deploy_id = ask(store, approvals=1)
    now = START
    with store.session() as session:
        row = service.get(session, deploy_id)
        assert row.state == "awaiting_approval"
        with pytest.raises(service.DeployRefused, match="another person"):
            service.operate(session, row, "approve", actor="cli:ana", now=now)
        service.operate(session, row, "approve", actor="cli:ben", now=now)
        assert row.state == "queued"
        with pytest.raises(service.DeployRefused, match="needs it paused"):
            service.operate(session, row, "resume", actor="cli:ben", now=now)
        service.operate(session, row, "pause", actor="cli:ben", now=now)
        service.operate(session, row, "resume", actor="cli:ben", now=now)
        assert row.state == "running"
        service.operate(session, row, "abort", actor="cli:ben", now=now)
        assert row.state == "rolling_back" and "aborted by cli:ben" in row.reason


def test_one_deploy_at_a_time_per_service(store: Store) -> None:
    first = ask(store)
    with pytest.raises(service.DeployRefused, match=f"already has deploy {first}"):
        ask(store)


def test_manual_promotion_waits_for_a_person_at_each_passing_step(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store, params={"auto_promote": False})  # --manual-promote
    assert drive(runner, clock, deploy_id, store) == "paused"
    with store.session() as session:
        row = service.get(session, deploy_id)
        assert "waiting for `opsplane deploy promote" in row.reason and row.percent == 10.0
        service.operate(session, row, "promote", actor="cli:ben", now=clock.now())
        assert row.state == "running"
    assert drive(runner, clock, deploy_id, store) == "paused"  # the next share waits again
    with store.session() as session:
        assert service.get(session, deploy_id).percent == 50.0


def test_a_p0_alert_within_the_window_after_success_undoes_the_deploy(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "succeeded"
    clock.advance(20 * 60)
    platform.p0_alerts = lambda service, since: ["CatalogDown"]  # type: ignore[method-assign]
    assert runner.round() == 1
    assert runner.round() == 1  # the undoing deploy moves; the succeeded one is not undone twice
    with store.session() as session:
        undone = service.get(session, deploy_id)
        undo = service.get(session, undone.params["undone_by"])
        assert (undo.from_version, undo.to_version) == ("v2", "v1")
        assert "P0 alert within 30 min of deploy" in undo.reason and "CatalogDown" in undo.reason
    assert drive(runner, clock, undo.id, store) == "succeeded"
    assert platform.main == {0: "v1", 1: "v1"} and platform.release == "v1"
    assert len(platform.incidents) == 1


def test_a_p0_alert_after_the_window_leaves_the_deploy_alone(store: Store) -> None:
    clock = ManualClock(START)
    platform = RecordingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store)
    assert drive(runner, clock, deploy_id, store) == "succeeded"
    clock.advance(31 * 60)
    platform.p0_alerts = lambda service, since: ["CatalogDown"]  # type: ignore[method-assign]
    assert runner.round() == 0
    with store.session() as session:
        assert "undone_by" not in service.get(session, deploy_id).params
