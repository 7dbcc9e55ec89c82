"""The forecast's fits on synthetic series: a daily pattern where the seasonal fit must win, a
steady ramp where the linear one must, and the time a fit reaches a threshold."""

from __future__ import annotations

import math
import random

import pytest

from opsplane.capacity.forecast import DAY, choose, crossing, fit_linear, fit_seasonal

T0 = 1_800_000_000 // 86400 * 86400  # midnight UTC
HOUR = 3600.0


def series(days: float, value: object, *, every: float = HOUR, noise: float = 0.0, seed: int = 1
           ) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    f = value  # type: ignore[assignment]
    return [(T0 + n * every, f(n * every) + rng.gauss(0, noise))  # type: ignore[operator]
            for n in range(int(days * DAY / every))]


def daily(t: float) -> float:
    """Busy by day, quiet by night, slowly growing."""
    return 0.40 + 0.25 * math.sin(2 * math.pi * (t % DAY) / DAY) + 0.002 * t / DAY


def test_the_linear_fit_recovers_slope_and_intercept() -> None:
    fit = fit_linear([(T0 + 10 * n, 0.2 + 0.001 * n) for n in range(50)])
    assert fit.slope == pytest.approx(0.0001)
    assert fit.at(T0) == pytest.approx(0.2)


def test_a_noisy_daily_pattern_chooses_the_seasonal_fit() -> None:
    points = series(14, daily, noise=0.03)
    choice = choose(points)
    assert choice.fit.kind == "seasonal", choice.reason
    errors = choice.errors
    assert errors["seasonal"] is not None and errors["linear"] is not None
    assert errors["seasonal"] < 0.5 * errors["linear"]
    # the profile carries the daily swing: the afternoon peak is about 0.25 above the level
    swing = choice.fit.at(T0 + 20 * DAY + 6 * HOUR) - choice.fit.at(T0 + 20 * DAY)
    assert swing == pytest.approx(0.25, abs=0.05)


def test_a_steady_ramp_chooses_the_linear_fit() -> None:
    points = series(14, lambda t: 0.3 + 0.01 * t / DAY, noise=0.02, seed=4)
    choice = choose(points)
    assert choice.fit.kind == "linear", choice.reason
    assert choice.fit.slope * DAY == pytest.approx(0.01, rel=0.1)


def test_a_short_history_is_linear_and_says_why() -> None:
    choice = choose(series(1, daily))
    assert choice.fit.kind == "linear"
    assert "two days" in choice.reason
    assert choose([(T0, 0.1), (T0 + 60, 0.2)]).reason.startswith("linear: only 2 points")


def test_a_linear_crossing_is_where_the_line_meets_the_threshold() -> None:
    fit = fit_linear([(T0, 0.5), (T0 + DAY, 0.6)])  # 10 points a day
    assert crossing(fit, 0.85, now=T0 + DAY, horizon=30 * DAY) == pytest.approx(T0 + 3.5 * DAY)
    assert crossing(fit, 0.85, now=T0 + DAY, horizon=2 * DAY) is None
    assert crossing(fit, 0.55, now=T0 + DAY, horizon=DAY) == T0 + DAY  # already there
    falling = fit_linear([(T0, 0.6), (T0 + DAY, 0.5)])
    assert crossing(falling, 0.85, now=T0 + DAY, horizon=365 * DAY) is None


def test_a_seasonal_crossing_comes_at_a_daily_peak_before_the_trend_gets_there() -> None:
    fit = fit_seasonal(series(14, daily))
    now = T0 + 14 * DAY
    at = crossing(fit, 0.75, now=now, horizon=60 * DAY)
    assert at is not None
    # the trend alone (0.40 + 0.002/day) is far below 0.75; the peaks (+0.25) reach it once the
    # trend is at 0.50, about day 50, in the hours around 06:00 UTC
    assert 45 * DAY < at - T0 < 55 * DAY
    assert 3 * HOUR < (at - T0) % DAY < 9 * HOUR
    assert crossing(fit_linear(series(14, daily)), 0.75, now=now, horizon=60 * DAY) is None
