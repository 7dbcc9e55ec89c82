"""Canary deploys on real parts: the shop's services under the process runtime, nginx (or
HAProxy) in front of them, `opsplane serve` as a process, and shoppers whose every answer is
kept (tests/support/deploys.py).

What a user relies on: a release that fails checkouts, answers slowly, crashes or cannot
migrate is rolled back by itself, with a reason that names what went wrong and a P1 incident,
and the shoppers are back on the release they had; a good release ends up running in the
service's own instances; a `serve` killed with SIGKILL mid-deploy is followed by one that
finishes the deploy without doing any step twice, while the proxy keeps the split it had;
traffic too thin to judge is said to be so, never taken as a pass or a fail; a deploy outside
its window is refused, and recorded only with an override.

The canary's steps are 50 % then 100 %, each judged over 3 s intervals for up to 24 s, so the
analysis has enough requests of each release within a step: a pass needs about 1,100 requests
per release (docs/deploy-analysis.md), which 120 requests a second give in under 20 s. The
latency margin is 50 % rather than 20 % (tests/support/deploys.py says why).

The tests that roll catalog back share one platform, since each leaves it as it found it
(v1 only, its incident resolved); they come last, with the promotion that ends on v2, so that
the shared platform stops as soon as they are done. It runs HAProxy, the others nginx, so
both engines carry a canary through its shares, a rollback and a settle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploys import DeployPlatform, Load, Setup, deploy_platform, shop_env_for_checkouts
from tests.support.polling import wait_for

BROWSING_RPS = 120  # catalog: enough for a passing verdict within one 24 s step
BUYING_RPS = 40  # orders: a failing verdict on 5 % of checkouts at the first look


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployPlatform]:
    with deploy_platform(tmp_path_factory.mktemp("catalog"), Setup(engine="haproxy")) as platform:
        yield platform


@pytest.fixture
def catalog(shared_catalog: DeployPlatform) -> DeployPlatform:
    """The shared catalog platform with no deploy under way and no open incident."""
    shared_catalog.clear("catalog")
    return shared_catalog


def answers_after(load: Load, moment: float, count: int = 60) -> list[Any]:
    """The load's answers from `moment` on, once there are `count` of them."""
    wait_for(lambda: len(load.answers(since=moment)) >= count, f"{count} answers after the deploy ended",
             timeout=30)
    return load.answers(since=moment)


def assert_back_on_v1(platform: DeployPlatform, service: str, version: str, load: Load,
                      ended: float) -> None:
    """After a rollback: every answer since it ended came from v1, nothing failed, the new
    release's instances are gone and v1 is the recorded release."""
    after = answers_after(load, ended)
    assert {a.version for a in after} == {"v1"}, {a.version for a in after}
    assert [a for a in after if a.failed] == []
    assert set(platform.answering(service)) == {"v1"}
    groups = platform.groups()
    assert f"{service}@{version}" not in groups, groups
    assert groups[service] == ["v1"] * platform.setup.instances
    assert platform.releases().get(service, "v1") == "v1"


def assert_new_release_never_answered(platform: DeployPlatform, deploy_id: int, version: str,
                                      load: Load) -> None:
    """The deploy never gave the new release a share, and no shopper met it."""
    shifts = [s for s in platform.steps_done(deploy_id) if s["kind"] == "shift"]
    assert [s for s in shifts if s["percent"] > 0] == [], shifts
    assert version not in load.versions()
    assert load.failures() == []


def share_of_v2(load: Load, since: float, until: float) -> float:
    found = load.versions(since, until)
    return found["v2"] / max(1, sum(found.values()))


def promote_v2(platform: DeployPlatform) -> None:
    """A canary of catalog v2 under shoppers ends with catalog's own instances on v2."""
    with platform.browsing(BROWSING_RPS) as load:
        load.wait_for_answers(100)
        deploy_id = platform.deploy("catalog", "v2")
        row = platform.wait_for_state(deploy_id, "succeeded", timeout=150)
        ended = time.monotonic()

        assert [v["outcome"] for v in row["verdicts"] if v["outcome"] != "inconclusive"] == ["pass"]
        shares = [s["percent"] for s in platform.steps_done(deploy_id) if "percent" in s]
        assert shares == [50.0, 50.0, 100.0, 0.0]  # shift, analyse, shift, settle back to its own
        ps = platform.ps()
        assert [(r["service"], r["version"], r["state"]) for r in ps if r["service"].startswith("catalog")] \
            == [("catalog", "v2", "running")] * platform.setup.instances
        assert platform.releases()["catalog"] == "v2"
        assert {a.version for a in answers_after(load, ended)} == {"v2"}
        assert set(platform.answering("catalog")) == {"v2"}
        assert load.failures() == []  # not one shopper saw a failure through the whole deploy


@pytest.mark.slow
def test_a_canary_failing_checkouts_is_rolled_back_with_a_p1_incident(tmp_path: Path) -> None:
    setup = Setup(services=("orders",), shop_env=shop_env_for_checkouts())
    with deploy_platform(tmp_path, setup) as platform, platform.buying(BUYING_RPS) as load:
        load.wait_for_answers(40)
        deploy_id = platform.deploy("orders", "v2-bad")
        row = platform.wait_for_state(deploy_id, "rolled_back", timeout=150)
        ended = time.monotonic()

        assert row["reason"].startswith("analysis at 50 %: errors"), row["reason"]
        verdict = row["verdicts"][-1]
        assert verdict["outcome"] == "fail" and verdict["canary"] == "v2-bad"
        assert "errors" in [m["name"] for m in verdict["metrics"] if m["outcome"] == "fail"]
        # Shoppers met failures only from v2-bad, and only at its checkouts.
        failures = load.failures(until=ended)
        assert failures
        assert {(a.version, a.route, a.status) for a in failures} == {("v2-bad", "/checkout", 500)}

        [incident] = [i for i in platform.cli_json("incident", "list") if i["status"] != "resolved"]
        assert (incident["severity"], incident["service"]) == ("P1", "orders")
        assert incident["title"].startswith(f"Deploy {deploy_id} of orders v2-bad rolled back: analysis")
        assert row["incident"] == incident["id"]
        assert_back_on_v1(platform, "orders", "v2-bad", load, ended)


@pytest.mark.slow
def test_serve_killed_mid_analysis_and_mid_settle_is_followed_without_repeating_a_step(
        tmp_path: Path) -> None:
    with deploy_platform(tmp_path) as platform, platform.browsing(BROWSING_RPS) as load:
        load.wait_for_answers(100)
        deploy_id = platform.deploy("catalog", "v2")

        # Killed once the analysis at 50 % has a few intervals of split traffic.
        platform.wait_for_step(deploy_id, "analyse", timeout=60)
        analysing = time.monotonic()
        wait_for(lambda: load.versions(since=analysing)["v2"] >= 150, "150 answers from v2", timeout=30)
        platform.kill_serve()
        killed, killed_analysing = time.monotonic(), datetime.now(UTC)
        platform.start_serve()
        wait_for(lambda: platform.deploy_row(deploy_id)["verdicts"], "the analysis to go on", timeout=90)
        gap = (killed, time.monotonic())
        assert 0.4 < share_of_v2(load, *gap) < 0.6, load.versions(*gap)  # the proxy kept the split

        # Killed while settling, once catalog's own instance is being replaced by v2.
        platform.wait_for_step(deploy_id, "settle", timeout=120)
        wait_for(lambda: any(s.service == "catalog" and s.version == "v2" for s in platform.instances()),
                 "catalog.0 to be replaced by v2", timeout=30, interval=0.05)
        platform.kill_serve()
        killed, killed_settling = time.monotonic(), datetime.now(UTC)
        platform.start_serve()
        row = platform.wait_for_state(deploy_id, "succeeded", timeout=90)
        assert share_of_v2(load, killed, time.monotonic()) == 1.0  # on v2: the canary, then its own

        done = {e["details"]["kind"]: datetime.fromisoformat(e["ts"])
                for e in platform.events("deploy.step", deploy_id=deploy_id)}
        assert done["analyse"] > killed_analysing and done["settle"] > killed_settling  # killed mid-step
        steps = [s["step"] for s in platform.steps_done(deploy_id)]
        assert steps == list(range(len(row["steps"]))), steps  # each step recorded once, in order
        started = [e for e in platform.events("runtime.started") if e["target"] == "catalog@v2"]
        assert len(started) == 1, started  # the track was started once
        assert platform.releases()["catalog"] == "v2"
        assert [(s.service, s.version) for s in platform.instances() if s.service.startswith("catalog")] \
            == [("catalog", "v2")] * platform.setup.instances
        assert load.failures() == []


@pytest.mark.slow
def test_a_canary_with_too_little_traffic_pauses_without_a_verdict(tmp_path: Path) -> None:
    setup = Setup(canary={"steps": [50, 100], "step_duration": "10s", "interval": "2s", "max_extensions": 1})
    with deploy_platform(tmp_path, setup) as platform, platform.browsing(1) as load:
        deploy_id = platform.deploy("catalog", "v2")
        row = platform.wait_for_state(deploy_id, "paused", timeout=90)
        assert row["reason"].startswith("analysis at 50 % is inconclusive: too little traffic to judge"), \
            row["reason"]

        # A paused deploy stays paused: the worker's next rounds neither promote nor roll it back.
        platform.wait_for_deploy_rounds(after=datetime.fromisoformat(row["updated_at"]))
        status = platform.cli_json("deploy", "status", str(deploy_id))
        assert (status["state"], status["percent"]) == ("paused", 50.0)
        verdicts = status["verdicts"]
        assert len(verdicts) == 2  # the step's end, then its one extension's
        for verdict in verdicts:
            assert verdict["outcome"] == "inconclusive", verdict
            assert verdict["reason"].startswith("too little traffic to judge: "), verdict["reason"]
            assert "more requests per version" in verdict["reason"], verdict["reason"]
            assert verdict["canary_requests"] < 200
        kinds = {e["kind"] for e in platform.events("deploy.*", deploy_id=deploy_id)}
        assert kinds.isdisjoint({"deploy.rolling_back", "deploy.rolled_back", "deploy.succeeded"}), kinds
        assert load.failures() == []
        shown = " ".join(platform.cli("deploy", "status", str(deploy_id)).stdout.split())
        assert "requests on v2: 50 %" in shown
        assert (f"waiting for a person: `opsplane deploy resume {deploy_id}` to go on, `opsplane deploy "
                f"promote {deploy_id}` to pass this analysis, or `opsplane deploy abort {deploy_id}` to "
                "undo it") in shown, shown


def test_a_deploy_outside_its_window_is_refused_unless_overridden(tmp_path: Path) -> None:
    opens = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=2)
    window = {"days": [f"{opens:%a}".lower()], "start": "10:00", "end": "11:00"}  # two days from now
    windows = {"development": {"windows": [window]}}
    with deploy_platform(tmp_path, Setup(windows=windows), start=False) as platform:
        assert platform.cli("config", "validate").returncode == 0

        refused = platform.cli("deploy", "catalog", "v2", "--no-wait", code=3)
        assert "outside the deployment window" in refused.stderr
        assert f"the next opens {opens:%a %Y-%m-%d} 10:00 UTC" in refused.stderr, refused.stderr
        assert platform.cli_json("deploy", "history") == []
        assert platform.events("deploy.*") == []

        recorded = platform.cli_json("deploy", "catalog", "v2", "--override", "--reason", "hotfix",
                                     "--no-wait")
        [history] = platform.cli_json("deploy", "history")
        assert (history["id"], history["state"]) == (recorded["id"], "queued")
        [requested] = platform.events("deploy.requested")
        override = requested["details"]["override"]
        assert override["reason"] == "hotfix"
        assert override["window"].startswith("outside the deployment window"), override


# --- on the shared catalog platform ---------------------------------------------------------


@pytest.mark.slow
def test_a_slower_canary_is_rolled_back_on_latency(catalog: DeployPlatform) -> None:
    with catalog.browsing(BROWSING_RPS) as load:
        load.wait_for_answers(100)
        deploy_id = catalog.deploy("catalog", "v2-slow")
        row = catalog.wait_for_state(deploy_id, "rolled_back", timeout=150)
        ended = time.monotonic()

        assert row["reason"].startswith("analysis at 50 %: latency"), row["reason"]
        failed = [m["name"] for m in row["verdicts"][-1]["metrics"] if m["outcome"] == "fail"]
        assert "latency" in failed and "errors" not in failed
        assert row["incident"] is not None
        assert_back_on_v1(catalog, "catalog", "v2-slow", load, ended)


@pytest.mark.slow
def test_a_canary_that_crashes_after_it_starts_never_gets_a_request(catalog: DeployPlatform) -> None:
    with catalog.browsing(BROWSING_RPS) as load:
        load.wait_for_answers(100)
        deploy_id = catalog.deploy("catalog", "v2-crash")
        row = catalog.wait_for_state(deploy_id, "rolled_back", timeout=90)
        ended = time.monotonic()

        assert row["reason"].startswith("v2-crash started, then failed: catalog@v2-crash.0 "), row["reason"]
        assert "(exit 1)" in row["reason"]
        assert "exiting with code 1" in row["reason"]  # what the release itself logged
        assert_new_release_never_answered(catalog, deploy_id, "v2-crash", load)
        assert_back_on_v1(catalog, "catalog", "v2-crash", load, ended)


@pytest.mark.slow
def test_a_release_whose_migration_fails_is_rolled_back_before_any_request(catalog: DeployPlatform) -> None:
    with catalog.browsing(BROWSING_RPS) as load:
        load.wait_for_answers(100)
        deploy_id = catalog.deploy("catalog", "v2-migration-fail")
        row = catalog.wait_for_state(deploy_id, "rolled_back", timeout=90)
        ended = time.monotonic()

        assert row["reason"].startswith("the migration of v2-migration-fail failed: "), row["reason"]
        assert "migration order_coupon_index (index orders by coupon_code) failed" in row["reason"]
        assert_new_release_never_answered(catalog, deploy_id, "v2-migration-fail", load)
        assert_back_on_v1(catalog, "catalog", "v2-migration-fail", load, ended)


@pytest.mark.slow
def test_a_good_canary_is_promoted_and_the_service_settles_on_it(catalog: DeployPlatform) -> None:
    promote_v2(catalog)  # last on the shared platform: it leaves catalog on v2
