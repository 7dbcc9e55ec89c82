"""Forecasts of a resource's use: a linear trend and a seasonal one, the better chosen on a
holdout, and when the chosen one crosses a threshold. Pure functions over (time, value) points.

- **linear**: least squares of value on time.
- **seasonal**: a linear trend plus an hour-of-day profile (the mean residual of each of the
  day's `bins`), fitted by backfitting: trend on the values less the profile, profile on the
  residuals of the trend, a few rounds.

`choose` fits both on the first part of the history and measures each one's mean absolute error
on the rest (the holdout, the newest quarter). The seasonal fit is taken only when the history
spans two days or more and it beats the linear one's holdout error by a tenth: the simpler fit
wins a tie. The chosen kind is then fitted again on the whole history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Point = tuple[float, float]  # (seconds since the epoch, value)
DAY = 86400.0
BINS = 24
HOLDOUT = 0.25
MARGIN = 0.9  # the seasonal fit must have at most this share of the linear one's holdout error
MIN_POINTS = 4
BACKFIT_ROUNDS = 4


@dataclass(frozen=True)
class Fit:
    """A fitted trend: `value(t) = intercept + slope * (t - origin) + profile[bin of t]`."""

    kind: Literal["linear", "seasonal"]
    origin: float
    intercept: float
    slope: float  # per second
    profile: tuple[float, ...] = ()
    period: float = DAY

    def at(self, t: float) -> float:
        value = self.intercept + self.slope * (t - self.origin)
        if self.profile:
            value += self.profile[_bin(t, self.period, len(self.profile))]
        return value


@dataclass(frozen=True)
class Choice:
    """The fit chosen, why, and both fits' holdout errors (None: not measured)."""

    fit: Fit
    reason: str
    errors: dict[str, float | None] = field(default_factory=dict)


def _bin(t: float, period: float, bins: int) -> int:
    return int((t % period) / period * bins) % bins


def fit_linear(points: Sequence[Point]) -> Fit:
    """Least squares of value on time (a flat line through a single point)."""
    if not points:
        raise ValueError("no points to fit")
    origin = points[0][0]
    n = len(points)
    mean_t = sum(t - origin for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - origin - mean_t) ** 2 for t, _ in points)
    slope = 0.0 if spread == 0 else sum((t - origin - mean_t) * (v - mean_v) for t, v in points) / spread
    return Fit("linear", origin, mean_v - slope * mean_t, slope)


def fit_seasonal(points: Sequence[Point], *, period: float = DAY, bins: int = BINS) -> Fit:
    """A linear trend plus the mean residual of each of the period's `bins` (0 for a bin
    without points), fitted by backfitting; the profile is centred so the trend carries the level."""
    if not points:
        raise ValueError("no points to fit")
    profile = [0.0] * bins
    trend = fit_linear(points)
    for _ in range(BACKFIT_ROUNDS):
        trend = fit_linear([(t, v - profile[_bin(t, period, bins)]) for t, v in points])
        sums, counts = [0.0] * bins, [0] * bins
        for t, v in points:
            b = _bin(t, period, bins)
            sums[b] += v - (trend.intercept + trend.slope * (t - trend.origin))
            counts[b] += 1
        filled = [sums[b] / counts[b] for b in range(bins) if counts[b]]
        centre = sum(filled) / len(filled)
        profile = [sums[b] / counts[b] - centre if counts[b] else 0.0 for b in range(bins)]
    return Fit("seasonal", trend.origin, trend.intercept, trend.slope, tuple(profile), period)


def mean_abs_error(fit: Fit, points: Sequence[Point]) -> float:
    return sum(abs(fit.at(t) - v) for t, v in points) / len(points)


def choose(points: Sequence[Point], *, period: float = DAY) -> Choice:
    """The better of the linear and the seasonal fit on a holdout, fitted again on all points."""
    points = sorted(points)
    if len(points) < MIN_POINTS:
        return Choice(fit_linear(points), f"linear: only {len(points)} points, too few to compare fits",
                      {"linear": None, "seasonal": None})
    span = points[-1][0] - points[0][0]
    cut = max(2, int(len(points) * (1 - HOLDOUT)))
    train, holdout = points[:cut], points[cut:]
    linear_error = mean_abs_error(fit_linear(train), holdout)
    if span < 2 * period:
        return Choice(fit_linear(points), f"linear: {span / 3600:.0f} h of history, under the two days a "
                      "daily pattern needs", {"linear": linear_error, "seasonal": None})
    seasonal_error = mean_abs_error(fit_seasonal(train, period=period), holdout)
    errors: dict[str, float | None] = {"linear": linear_error, "seasonal": seasonal_error}
    if seasonal_error <= MARGIN * linear_error:
        return Choice(fit_seasonal(points, period=period),
                      f"seasonal: its error on the newest quarter ({seasonal_error:.4g}) is below the "
                      f"linear fit's ({linear_error:.4g})", errors)
    return Choice(fit_linear(points), f"linear: the seasonal fit's error on the newest quarter "
                  f"({seasonal_error:.4g}) does not beat the linear fit's ({linear_error:.4g}) by a tenth",
                  errors)


def crossing(fit: Fit, threshold: float, *, now: float, horizon: float, step: float = 900.0) -> float | None:
    """The first time after `now`, within `horizon` seconds, when `fit` reaches `threshold`
    (`now` itself when it is there already); None when it does not within the horizon."""
    if fit.at(now) >= threshold:
        return now
    if not fit.profile:
        if fit.slope <= 0:
            return None
        at = fit.origin + (threshold - fit.intercept) / fit.slope
        return at if at <= now + horizon else None
    before, t = now, now
    while t < now + horizon:
        t = min(t + step, now + horizon)
        value = fit.at(t)
        if value >= threshold:
            low = fit.at(before)
            share = (threshold - low) / (value - low) if value != low else 1.0
            return before + share * (t - before)
        before = t
    return None


def growth_per_day(fit: Fit) -> float:
    """How much the trend adds each day (the profile aside)."""
    return fit.slope * DAY


def finite(points: Sequence[Point]) -> list[Point]:
    return [(t, v) for t, v in points if math.isfinite(v)]
