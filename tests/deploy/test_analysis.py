"""Canary analysis: equal versions pass and rarely fail, worse canaries fail early, low traffic
is inconclusive, and the verdict explains itself. Intervals are drawn from known distributions
through the shop's latency buckets, as Prometheus would hand them over."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from opsplane.deploy.analysis import (
    AnalysisSettings,
    Interval,
    ObservationError,
    Verdict,
    analyse,
    combine,
    flagger_style,
)
from shop.telemetry import LATENCY_BUCKETS

BOUNDS = (*LATENCY_BUCKETS, math.inf)
RANK = {"fail": 0, "inconclusive": 1, "pass": 2}
SETTINGS = AnalysisSettings()


@dataclass(frozen=True)
class Version:
    """How one version answers: requests per second, error ratio, and log-normal latencies
    (median and spread in seconds) plus a fixed extra delay."""

    rate: float = 20.0
    error_ratio: float = 0.005
    median: float = 0.05
    sigma: float = 0.5
    delay: float = 0.0

    def latencies(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return self.median * np.exp(self.sigma * rng.standard_normal(count)) + self.delay

    def interval(self, rng: np.random.Generator, seconds: float = 10.0) -> tuple[Interval, np.ndarray]:
        count = int(rng.poisson(self.rate * seconds))
        latencies = self.latencies(rng, count)
        cumulative = np.searchsorted(np.sort(latencies), LATENCY_BUCKETS, side="right")
        buckets = tuple(zip(BOUNDS, [*map(float, cumulative), float(count)], strict=True))
        errors = float(rng.binomial(count, self.error_ratio))
        return Interval(float(count), errors, float(latencies.sum()), buckets), latencies


STABLE = Version()


def observe(version: Version, rng: np.random.Generator, count: int) -> list[Interval]:
    return [version.interval(rng)[0] for _ in range(count)]


def step(canary: Version, seed: int, count: int = 24, stable: Version = STABLE
         ) -> tuple[list[Interval], list[Interval]]:
    rng = np.random.default_rng(seed)
    return observe(stable, rng, count), observe(canary, rng, count)


def watch(stable: list[Interval], canary: list[Interval], config: AnalysisSettings = SETTINGS) -> Verdict:
    """Analyse after every interval, as a deploy does, until a verdict is decisive."""
    for seen in range(1, len(stable) + 1):
        verdict = analyse(stable[:seen], canary[:seen], config, final=seen == len(stable))
        if verdict.decisive:
            return verdict
    raise AssertionError("the final look is always decisive")


def metric(verdict: Verdict, name: str):  # type: ignore[no-untyped-def]
    return next(m for m in verdict.metrics if m.name == name)


def test_two_equal_versions_pass() -> None:
    verdict = watch(*step(STABLE, seed=1))

    assert verdict.outcome == "pass"
    assert verdict.decisive
    assert {m.name: m.outcome for m in verdict.metrics} == {
        "errors": "pass", "latency": "pass", "latency_tail": "pass", "p95": "pass"}


def test_equal_versions_fail_in_at_most_one_percent_of_steps() -> None:
    outcomes = [watch(*step(STABLE, seed, count=12)).outcome for seed in range(300)]

    assert outcomes.count("fail") <= 3
    assert outcomes.count("pass") >= 270  # two minutes at 20 requests a second are enough to pass


def test_a_canary_answering_five_percent_errors_fails_at_the_first_look() -> None:
    verdict = watch(*step(replace(STABLE, error_ratio=0.05), seed=2))

    assert (verdict.outcome, verdict.look, verdict.final) == ("fail", 1, False)
    assert metric(verdict, "errors").outcome == "fail"
    assert "worse by more than 1 point" in verdict.reason


def test_a_canary_300_ms_slower_fails() -> None:
    verdict = watch(*step(replace(STABLE, delay=0.3), seed=3))

    assert verdict.outcome == "fail"
    assert {metric(verdict, name).outcome for name in ("latency", "latency_tail", "p95")} == {"fail"}
    assert metric(verdict, "p95").effect_size > 2


def test_a_fatter_tail_with_the_same_median_fails_where_mann_whitney_alone_passes() -> None:
    canary = replace(STABLE, sigma=0.9)  # same median; p95 1.9 times the stable one
    rng = np.random.default_rng(4)
    stable_pairs = [STABLE.interval(rng) for _ in range(12)]
    canary_pairs = [canary.interval(rng) for _ in range(12)]
    stable_latencies = np.concatenate([latencies for _, latencies in stable_pairs])
    canary_latencies = np.concatenate([latencies for _, latencies in canary_pairs])

    rank_test = stats.mannwhitneyu(canary_latencies, stable_latencies, alternative="greater")
    verdict = watch([i for i, _ in stable_pairs], [i for i, _ in canary_pairs])

    assert rank_test.pvalue > 0.05  # on the exact latencies, Mann-Whitney sees no slower canary
    assert metric(verdict, "latency").outcome != "fail"
    assert metric(verdict, "p95").outcome != "fail"
    assert metric(verdict, "latency_tail").outcome == "fail"
    assert verdict.outcome == "fail"


def test_one_request_a_second_for_a_minute_is_inconclusive_and_says_what_is_missing() -> None:
    stable, canary = step(replace(STABLE, rate=1.0, error_ratio=0.3), seed=5, count=6,
                          stable=replace(STABLE, rate=1.0))
    verdict = analyse(stable, canary, SETTINGS, final=True)

    assert (verdict.outcome, verdict.decisive) == ("inconclusive", True)
    assert {m.outcome for m in verdict.metrics} == {"inconclusive"}
    missing = SETTINGS.min_requests - min(verdict.stable_requests, verdict.canary_requests)
    assert verdict.reason.startswith("too little traffic to judge")
    assert f"needs {missing:,.0f} more requests per version" in verdict.reason
    assert "more intervals at this rate" in verdict.reason


def test_fewer_intervals_than_the_minimum_give_no_verdict_however_busy() -> None:
    stable, canary = step(replace(STABLE, rate=500.0, error_ratio=0.5), seed=6, count=5,
                          stable=replace(STABLE, rate=500.0))

    verdict = analyse(stable, canary, SETTINGS)

    assert verdict.outcome == "inconclusive"
    assert "needs 1 more interval" in verdict.reason


def test_clear_evidence_ends_the_step_early_and_weak_evidence_waits_for_more() -> None:
    clear = step(replace(STABLE, error_ratio=0.08), seed=7, count=6)
    weak = step(replace(STABLE, error_ratio=0.018), seed=7, count=6)

    early = analyse(*clear, SETTINGS)
    waiting = analyse(*weak, SETTINGS)

    assert (early.outcome, early.decisive, early.final) == ("fail", True, False)
    assert (waiting.outcome, waiting.decisive) == ("inconclusive", False)
    assert "not decisive" in waiting.explain()


def test_each_later_look_is_held_to_a_stricter_threshold_than_the_final_one() -> None:
    stable, canary = step(STABLE, seed=8, count=20)
    thresholds = [metric(analyse(stable[:n], canary[:n], SETTINGS), "errors").alpha for n in (6, 7, 12, 20)]
    final = metric(analyse(stable, canary, SETTINGS, final=True), "errors").alpha

    assert thresholds == sorted(thresholds, reverse=True)
    assert final > thresholds[0]
    assert sum(SETTINGS.early_share * 0.01 / (k * (k + 1)) for k in range(1, 10_000)) < 0.005


def test_the_explanation_names_both_versions_figures_and_the_dictionary_is_json() -> None:
    verdict = watch(*step(replace(STABLE, error_ratio=0.05), seed=9))

    line = verdict.explain()
    assert "\n" not in line
    for figure in ("error ratio", "stable vs", "canary, p95", "requests", "p=", "difference"):
        assert figure in line
    errors = metric(verdict, "errors")
    assert f"n={errors.stable_samples:,.0f}/{errors.canary_samples:,.0f}" in errors.explain()
    data = json.loads(json.dumps(verdict.as_dict(), allow_nan=False))
    assert data["outcome"] == "fail"
    assert [m["name"] for m in data["metrics"]] == ["errors", "latency", "latency_tail", "p95"]


def test_a_canary_above_the_absolute_limit_fails_even_when_the_stable_release_is_as_bad() -> None:
    bad = replace(STABLE, error_ratio=0.12)
    verdict = watch(*step(bad, seed=10, stable=bad))

    assert verdict.outcome == "fail"
    assert "above the 5% limit" in metric(verdict, "errors").reason


def test_an_inconclusive_step_says_how_much_more_traffic_would_settle_it() -> None:
    verdict = analyse(*step(replace(STABLE, error_ratio=0.012), seed=11, count=8), SETTINGS, final=True)

    assert verdict.outcome == "inconclusive"
    assert "requests per version would likely settle it" in verdict.reason


def test_intervals_that_cannot_be_counted_are_refused_with_what_was_wrong() -> None:
    with pytest.raises(ObservationError, match="3 errors but only 2 requests"):
        Interval(2.0, 3.0, 0.1)
    with pytest.raises(ObservationError, match="last must be \\+Inf"):
        Interval(2.0, 0.0, 0.1, ((0.1, 1.0), (0.5, 2.0)))
    other = Interval(1.0, 0.0, 0.1, ((0.2, 1.0), (math.inf, 1.0)))
    one = Interval(1.0, 0.0, 0.1, ((0.1, 1.0), (math.inf, 1.0)))
    with pytest.raises(ObservationError, match="use one histogram for a step"):
        analyse([one, other], [one, one], SETTINGS)


def test_an_interval_survives_json_and_intervals_combine() -> None:
    stable, _ = step(STABLE, seed=12, count=3)
    again = [Interval.from_dict(json.loads(json.dumps(i.as_dict()))) for i in stable]
    whole = combine(stable)

    assert again == stable
    assert whole.requests == sum(i.requests for i in stable)
    assert whole.buckets[-1] == (math.inf, whole.requests)


def test_the_flagger_baseline_rolls_back_after_threshold_failed_checks_and_on_no_data() -> None:
    rng = np.random.default_rng(13)
    bad = [combine(observe(replace(STABLE, error_ratio=0.05), rng, 6)) for _ in range(6)]
    empty = Interval(0.0, 0.0, 0.0)

    rolled_back = flagger_style(bad)
    no_data = flagger_style([empty] * 5)
    healthy = flagger_style([combine(observe(STABLE, rng, 6)) for _ in range(3)])

    assert (rolled_back.outcome, rolled_back.decided_at) == ("fail", 5)
    assert (no_data.outcome, no_data.checks[0].reason) == ("fail", "no data")
    assert (healthy.outcome, healthy.failed_checks) == ("pass", 0)


def test_settings_read_percentages_and_describe_every_field() -> None:
    config = AnalysisSettings.model_validate({"max_error_ratio": "2%", "latency_margin": "30%"})

    assert (config.max_error_ratio, config.latency_margin) == (0.02, 0.3)
    assert all(field.description for field in AnalysisSettings.model_fields.values())
    with pytest.raises(ValueError, match="error_margin"):
        AnalysisSettings.model_validate({"error_margin": 0})


# --- properties ------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=40)
histograms = st.lists(counts, min_size=len(BOUNDS), max_size=len(BOUNDS))


def _interval(per_bucket: list[int], errors: int) -> Interval:
    cumulative = np.cumsum(per_bucket).astype(float)
    total = float(cumulative[-1])
    buckets = tuple(zip(BOUNDS, cumulative.tolist(), strict=True))
    return Interval(total, float(min(errors, total)), 0.0, buckets)


@st.composite
def sparse_steps(draw: st.DrawFn) -> tuple[list[Interval], list[Interval]]:
    """Steps that stay under the guard: fewer intervals than the minimum, or fewer requests."""
    few_intervals = draw(st.booleans())
    length = draw(st.integers(1, SETTINGS.min_intervals - 1)) if few_intervals else SETTINGS.min_intervals
    cap = 400 if few_intervals else SETTINGS.min_requests // SETTINGS.min_intervals - 1
    sides = []
    for _ in range(2):
        intervals = []
        for _ in range(length):
            requests = draw(st.integers(0, cap))
            spread = draw(st.lists(st.integers(0, 5), min_size=len(BOUNDS), max_size=len(BOUNDS)))
            weights = np.array(spread, dtype=float) + 1e-9
            per_bucket = np.floor(requests * weights / weights.sum()).astype(int).tolist()
            intervals.append(_interval(per_bucket, draw(st.integers(0, requests))))
        sides.append(intervals)
    return sides[0], sides[1]


@settings(max_examples=150, deadline=None)
@given(sparse_steps(), st.booleans())
def test_under_the_traffic_guard_there_is_never_a_pass_or_a_fail(sides, final) -> None:  # type: ignore[no-untyped-def]
    verdict = analyse(*sides, SETTINGS, final=final)

    assert verdict.outcome == "inconclusive"
    assert verdict.reason.startswith("too little traffic")


@st.composite
def a_step_and_a_worse_one(draw: st.DrawFn) -> tuple[list[Interval], list[Interval]]:
    """A step of eight busy intervals, and the same requests with some moved to slower
    buckets and some more of them errors."""
    good, worse = [], []
    for _ in range(8):
        per_bucket = [count * 3 for count in draw(histograms)]
        per_bucket[0] += 40
        moved = draw(st.lists(st.sampled_from((0.0, 0.0, 0.0, 0.02, 0.1, 0.5)), min_size=len(BOUNDS),
                              max_size=len(BOUNDS)))
        slower = list(per_bucket)
        for k in range(len(BOUNDS) - 1):
            shift = int(slower[k] * moved[k])
            slower[k] -= shift
            slower[k + 1] += shift
        total = sum(per_bucket)
        errors = draw(st.integers(0, total // 20))
        good.append(_interval(per_bucket, errors))
        worse.append(_interval(slower, errors + draw(st.sampled_from((0, 0, 1, 3, total // 20)))))
    return good, worse


@settings(max_examples=120, deadline=None)
@given(a_step_and_a_worse_one(), st.booleans())
def test_the_worse_side_as_canary_never_fares_better_than_the_better_side(sides, final) -> None:  # type: ignore[no-untyped-def]
    good, worse = sides
    worse_as_canary = analyse(good, worse, SETTINGS, final=final)
    better_as_canary = analyse(worse, good, SETTINGS, final=final)
    good_as_its_own_canary = analyse(good, good, SETTINGS, final=final)

    assert RANK[worse_as_canary.outcome] <= RANK[better_as_canary.outcome]
    assert RANK[worse_as_canary.outcome] <= RANK[good_as_its_own_canary.outcome]
    assert worse_as_canary.outcome != "pass" or good_as_its_own_canary.outcome == "pass"
