"""Blue-green deploys of the shop's catalog through real nginx and HAProxy under steady load:
every request answered while requests move to the new release and while the service settles
on it, an instant rollback during the hold, `--dry-run` and refused requests that change
nothing. `serve` carries the deploys out, as in production; the tests look where an operator
would: the answers clients get, `opsplane ps`, the deploy's record and the event log."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.deploy_platform import (
    ENGINES,
    SERVICE,
    DeployPlatform,
    Load,
    StepClock,
    running,
    step_index,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

RATE = 60.0  # requests a second through the proxy, over four keep-alive clients


@pytest.fixture(params=ENGINES)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeployPlatform]:
    with running(DeployPlatform(tmp_path / "platform", engine=request.param)) as platform:
        yield platform


@pytest.fixture
def held(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeployPlatform]:
    """A platform whose blue-green deploys keep the previous release for a minute, so that an
    undo lands in the hold however slow the machine makes the commands."""
    platform = DeployPlatform(tmp_path / "platform", engine=request.param, keep_previous="60s")
    with running(platform):
        yield platform


@pytest.fixture(scope="module")
def idle_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployPlatform]:
    """The catalog behind nginx without `serve`: nothing advances a deploy, so whatever changes
    is the command's doing."""
    with running(DeployPlatform(tmp_path_factory.mktemp("idle") / "platform", engine="nginx"),
                 serve=False) as platform:
        yield platform


def _ended(deploy: dict[str, object]) -> float:
    return datetime.fromisoformat(str(deploy["ended_at"])).timestamp()


def _created(deploy: dict[str, object]) -> float:
    return datetime.fromisoformat(str(deploy["created_at"])).timestamp()


def _answered_for(load: Load, seconds: float) -> None:
    """Wait until the load has run `seconds` more, so the answers cover that stretch."""
    until = time.time() + seconds
    wait_for(lambda: load.recorded() and load.recorded()[-1].sent >= until, f"{seconds:g} s of load",
             timeout=seconds + 10)


def test_blue_green_moves_every_request_to_the_new_release_without_one_failing(
        platform: DeployPlatform, record_property: Callable[[str, object], None]) -> None:
    with Load(platform.main_route, rate=RATE) as load:
        _answered_for(load, 1.0)
        deploy_id = platform.deploy("v2", "--strategy", "blue-green")
        with StepClock(platform, deploy_id) as clock:
            deploy = platform.wait_deploy(deploy_id)
        _answered_for(load, 1.0)

    assert deploy["state"] == "succeeded", deploy["reason"]
    assert not load.failures(), f"{load.summary()}\n{platform.timeline()}"
    assert load.achieved_rate() >= 50, load.summary()
    assert not platform.proxy_retries(), "the proxy sent requests to an instance that was stopping"
    shift_began = clock.began[step_index(deploy, "shift")]
    assert load.versions(until=shift_began) == {"v1"}
    assert load.versions(since=_ended(deploy)) == {"v2"}
    last_v1 = load.last_sent("v1")
    all_v2 = load.first_sent("v2", since=last_v1 or 0.0)
    assert last_v1 is not None and all_v2 is not None
    assert last_v1 < clock.began[step_index(deploy, "hold")], "v1 answered after the shift step ended"
    switch = all_v2 - shift_began
    record_property("switch_seconds", round(switch, 3))
    record_property("load", load.summary())
    print(f"\n{platform.engine}: {switch * 1000:.0f} ms from the shift step's start to answers from v2 only; "
          f"deploy took {_ended(deploy) - _created(deploy):.1f} s; {load.summary()}")

    assert "HTTP Request:" not in platform.serve.log_path.read_text(), "serve logged each proving request"
    instances = platform.ps()
    assert {(i["service"], i["version"]) for i in instances if i["service"] != "edge"} == {(SERVICE, "v2")}
    assert len(platform.own_instances()) == 2
    assert platform.releases() == {SERVICE: "v2"}


@pytest.mark.parametrize("held, undo", [("nginx", "abort"), ("haproxy", "rollback")], indirect=["held"])
def test_undoing_a_blue_green_deploy_during_its_hold_moves_requests_back_at_once(
        held: DeployPlatform, undo: str, record_property: Callable[[str, object], None]) -> None:
    platform = held
    with Load(platform.main_route, rate=RATE) as load:
        deploy_id = platform.deploy("v2", "--strategy", "blue-green")
        platform.wait_step(deploy_id, "hold")
        _answered_for(load, 0.5)
        assert load.versions(since=time.time() - 0.5) == {"v2"}

        second = platform.run("deploy", SERVICE, "v2-jitter", "--strategy", "blue-green")
        assert second.returncode == 3, second.stderr
        assert f"{SERVICE} already has deploy {deploy_id} (running)" in _said(second)

        platform.cli(*(("deploy", "abort", str(deploy_id)) if undo == "abort" else
                       ("rollback", SERVICE, "--no-wait")))
        deploy = platform.wait_deploy(deploy_id, timeout=60)
        _answered_for(load, 1.0)

    assert deploy["state"] == "rolled_back", deploy["reason"]
    assert deploy["step"] == step_index(deploy, "hold"), "the undo came after the hold"
    assert not load.failures(), f"{load.summary()}\n{platform.timeline()}"
    assert load.achieved_rate() >= 50, load.summary()
    assert not platform.proxy_retries(), "the proxy sent requests to an instance that was stopping"
    (asked,) = [e["at"] for e in platform.events("deploy.rolling_back")]
    last_v2 = load.last_sent("v2")
    assert last_v2 is not None
    back = last_v2 - asked
    record_property("back_on_v1_seconds", round(back, 3))
    print(f"\n{platform.engine}: the last v2 answer came {back:.2f} s after `{undo}` recorded the rollback; "
          f"{load.summary()}")
    assert back < 3.0, "requests took more than a couple of seconds to go back to v1"
    assert load.versions(since=last_v2 + 0.001) == {"v1"}
    assert {(i["service"], i["version"]) for i in platform.ps() if i["service"] != "edge"} == \
        {(SERVICE, "v1")}
    assert platform.releases() == {SERVICE: "v1"}
    assert [d["id"] for d in platform.json("deploy", "history")] == [deploy_id]


PLANS = {
    "blue-green": ["pre-checks: no open P0/P1 incident",
                   "start 2 instances of the new release (no requests yet)",
                   "send 100 % of requests to the new release",
                   "keep the previous release running 10 s for an instant rollback",
                   "move the service's own instances to the new release, then stop the extra ones",
                   "record the new release as current",
                   "post-checks: the service's health checks pass"],
    "canary": ["pre-checks", "start 1 instance of the new release",
               "send 10 % of requests", "analyse the new release against the stable one at 10 %",
               "send 50 % of requests", "analyse the new release against the stable one at 50 %",
               "send 100 % of requests", "move the service's own instances", "record the new release",
               "post-checks"],
    "rolling": ["pre-checks", "replace instance 0 with the new release, gated on its health",
                "replace instance 1 with the new release, gated on its health", "record the new release",
                "post-checks"],
}


def test_a_dry_run_prints_each_strategy_s_plan_and_changes_nothing(idle_platform: DeployPlatform) -> None:
    before = idle_platform.snapshot()

    printed = {strategy: idle_platform.cli("deploy", SERVICE, "v2", "--strategy", strategy, "--dry-run")
               for strategy in PLANS}

    for strategy, text in printed.items():
        assert f"dry run: {SERVICE} v1 -> v2, {strategy}, 2 instance(s), environment development" in text
        assert "window: open: no window applies" in text
        steps = [found.groups() for line in text.splitlines()
                 if (found := re.fullmatch(r"\s*(\d+)\. (.*)", line))]
        assert [int(number) for number, _ in steps] == list(range(1, len(PLANS[strategy]) + 1)), text
        for (_, step), expected in zip(steps, PLANS[strategy], strict=True):
            assert expected in step, text
        assert text.rstrip().endswith("nothing was changed")
    assert idle_platform.snapshot() == before


REFUSALS = {
    ("catalgo", "v2"): "unknown service 'catalgo'; did you mean 'catalog'?",
    ("catalog", "v7"): "release 'v7' of catalog is not built",
    ("catalog", "v2", "--strategy", "bogus"): "unknown strategy 'bogus'; use rolling, blue-green or canary",
    ("catalog", "v1"): "catalog already runs v1",
}


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join(done.stderr.split())


def test_a_refused_deploy_says_why_and_changes_nothing(idle_platform: DeployPlatform) -> None:
    before = idle_platform.snapshot()

    done = {args: idle_platform.run("deploy", *args) for args in REFUSALS}

    for args, message in REFUSALS.items():
        assert done[args].returncode == 3, (args, done[args].stdout, done[args].stderr)
        assert message in _said(done[args]), (args, done[args].stderr)
        assert "Traceback" not in done[args].stderr
    assert idle_platform.snapshot() == before


def test_a_deploy_while_another_is_recorded_is_refused_and_changes_nothing(
        idle_platform: DeployPlatform) -> None:
    first = idle_platform.deploy("v2", "--strategy", "blue-green")  # stays queued: no `serve` takes it here
    before = idle_platform.snapshot()

    done = idle_platform.run("deploy", SERVICE, "v2-jitter")

    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"catalog already has deploy {first} (queued); wait for it, or `opsplane deploy abort {first}`" \
        in _said(done)
    assert idle_platform.snapshot() == before
    assert "nothing had changed" in idle_platform.cli("deploy", "abort", str(first))
    assert idle_platform.deploy_state(first)["state"] == "aborted"
