"""The plans of the three strategies: what runs, in which order, and the shares a canary walks."""

from __future__ import annotations

import pytest

from opsplane.deploy.plan import PlanInput, build, canary_weights, describe


def kinds(steps: list[dict]) -> list[str]:
    return [step["kind"] for step in steps]


def test_rolling_replaces_each_instance_in_turn_between_the_checks() -> None:
    steps = build(PlanInput(strategy="rolling", instances=3, proxied=False))
    assert kinds(steps) == ["precheck", "replace", "replace", "replace", "release", "postcheck"]
    assert [s["instance"] for s in steps if s["kind"] == "replace"] == [0, 1, 2]


def test_blue_green_starts_green_beside_blue_switches_and_keeps_blue_for_its_time() -> None:
    steps = build(PlanInput(strategy="blue-green", instances=2, proxied=True, keep_previous=120,
                            smoke_tests=1))
    assert kinds(steps) == ["precheck", "start", "smoke", "shift", "hold", "settle", "release", "postcheck"]
    assert steps[1]["instances"] == 2
    assert steps[3]["percent"] == 100
    assert steps[4]["seconds"] == 120


def test_canary_analyses_every_share_below_100_and_settles_after() -> None:
    steps = build(PlanInput(strategy="canary", instances=2, proxied=True, canary_steps=(5, 25, 50, 100)))
    assert kinds(steps) == ["precheck", "start", "shift", "analyse", "shift", "analyse", "shift", "analyse",
                            "shift", "settle", "release", "postcheck"]
    assert [s["percent"] for s in steps if s["kind"] == "shift"] == [5, 25, 50, 100]
    assert steps[1]["instances"] == 1  # a canary is one instance


@pytest.mark.parametrize(("initial", "expected"), [
    (None, [5, 25, 50, 100]), (10, [10, 25, 50, 100]), (25, [25, 50, 100]), (100, [100.0]),
])
def test_an_initial_share_replaces_the_smaller_steps(initial: float | None, expected: list[float]) -> None:
    assert canary_weights((5, 25, 50, 100), initial) == expected


def test_smoke_tests_appear_only_when_the_service_has_some() -> None:
    assert "smoke" not in kinds(build(PlanInput(strategy="canary", instances=1, proxied=True)))


def test_every_step_reads_as_a_sentence() -> None:
    for strategy in ("rolling", "blue-green", "canary"):
        for step in build(PlanInput(strategy=strategy, instances=2, proxied=True, smoke_tests=1)):
            text = describe(step)
            assert text != step["kind"] and len(text) > 15


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        build(PlanInput(strategy="big-bang", instances=1, proxied=False))
