"""Whether a canary is worse than the stable release, from what both answered during one step.

`analyse` compares the two versions over the same intervals and returns a `Verdict`: "fail"
when the canary is clearly worse by more than a margin worth acting on, "pass" when the data
bound every worsening below its margin, "inconclusive" otherwise. Too little traffic is
inconclusive, never a failure. docs/deploy-analysis.md explains the statistics in plain words.

The metrics, each a test with two sides (worse than its margin: fail; better: pass):

- errors: the Farrington-Manning score test of the difference of two error ratios against
  error_margin, and an exact binomial test of the canary's ratio against max_error_ratio.
- latency: Mann-Whitney U on single requests, canary against the stable release slowed by
  latency_margin. The histograms know each request only by its bucket, so the test runs on the
  two versions' bucket counts, every request of a bucket tied with the others (mid-ranks, the
  tie-corrected variance). Requests rather than per-interval values: an interval holds hundreds
  of requests, and a step has only a handful of intervals.
- latency_tail: the share of requests slower than a bucket bound in the stable release's
  slowest tenth, by Fisher's exact test, against the same slowed release. A canary with the
  same median and a fatter tail barely moves Mann-Whitney but multiplies this share. Tests of
  spread or of whole distributions (Ansari-Bradley, Kolmogorov-Smirnov, Anderson-Darling) assume
  continuous data; on fifteen buckets they are mostly ties, whereas a count above a bucket bound
  is exact on a histogram.
- p95: the same share at the bound below the p95 of the stable release slowed by
  max_latency_factor: the manual's "canary p95 above twice the stable p95".

Repeated looks: a step may be analysed after every interval. The error budget alpha =
1 - confidence is spent over the looks: look k (k = 1 at min_intervals) may spend
alpha * early_share / (k (k + 1)), which sums to alpha * early_share however many looks there
are, and the final look the rest. Early verdicts thus need clearer evidence, and looking often
cannot add up to more than alpha of false verdicts. In one look a fail needs any one of the five
fail tests, so each gets a fifth of the look's budget (Bonferroni); a pass needs every pass test
(an intersection-union test), so none is divided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any, Literal

from opsplane.deploy import histogram
from opsplane.deploy.models import AnalysisSettings
from opsplane.errors import OpsplaneError
from opsplane.units import Unit, format_value

Outcome = Literal["pass", "fail", "inconclusive"]
FAIL_TESTS = 5  # errors against stable, errors against the limit, latency, latency_tail, p95
_NORMAL = NormalDist()


class ObservationError(OpsplaneError):
    """Counts that cannot be analysed: negative, not a number, or histograms that disagree."""

    exit_code = 3


@dataclass(frozen=True)
class Interval:
    """What one version answered in one interval, from Prometheus counters and a histogram.

    `buckets` is the increase of the cumulative latency histogram, (upper bound in seconds,
    requests at or below it), bounds increasing, +Inf last; empty without a histogram. Counts
    are floats because Prometheus extrapolates increases.
    """

    requests: float
    errors: float
    latency_sum: float
    buckets: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "latency_sum"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ObservationError(f"interval {name} is {value!r}: expected a finite number of 0 or more")
        if self.errors > self.requests * (1 + 1e-9) + 1e-9:
            raise ObservationError(f"interval has {self.errors:g} errors but only {self.requests:g} requests")
        bounds = [le for le, _ in self.buckets]
        if bounds and (not math.isinf(bounds[-1]) or bounds[-1] < 0):
            raise ObservationError(f"histogram buckets end at le={bounds[-1]!r}: the last must be +Inf")
        if bounds and (bounds[0] <= 0 or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False))):
            raise ObservationError(f"histogram bounds {bounds}: expected positive bounds in increasing order")
        if any(not math.isfinite(count) or count < 0 for _, count in self.buckets):
            raise ObservationError("histogram bucket counts must be finite numbers of 0 or more")

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "latency_sum": self.latency_sum,
                "buckets": [["+Inf" if math.isinf(le) else le, count] for le, count in self.buckets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        """The interval `as_dict` wrote (`le` "+Inf" for the last bucket)."""
        try:
            buckets = tuple((float(le), float(count)) for le, count in data.get("buckets", ()))
            return cls(float(data["requests"]), float(data["errors"]), float(data.get("latency_sum", 0.0)),
                       buckets)
        except (KeyError, TypeError, ValueError) as exc:
            raise ObservationError(f"cannot read interval {data!r}: expected requests, errors, "
                                   f"latency_sum and buckets [[le, count], ...] ({exc})") from None


def combine(intervals: Sequence[Interval]) -> Interval:
    """One interval holding the requests of all of `intervals` (their histograms must match)."""
    totals = _totals(intervals, "combined")
    cumulative = [sum(totals.counts[: k + 1]) for k in range(len(totals.counts))]
    return Interval(totals.requests, totals.errors, sum(i.latency_sum for i in intervals),
                    tuple(zip(totals.bounds, cumulative, strict=True)))


@dataclass(frozen=True)
class MetricResult:
    """One metric's comparison. `p_value` is that of the side behind the outcome (for an
    inconclusive one, the side nearer its threshold), `alpha` the threshold it was held to,
    `needed` the requests per version that would give the configured power."""

    name: str
    outcome: Outcome
    stable_value: float
    canary_value: float
    p_value: float
    effect_size: float
    stable_samples: float
    canary_samples: float
    reason: str
    unit: Unit = Unit.RATIO
    effect: str = "difference"
    alpha: float = math.nan
    needed: float = math.nan

    def explain(self) -> str:
        return (f"{self.name} {self.outcome}: stable {format_value(self.stable_value, self.unit)} vs canary "
                f"{format_value(self.canary_value, self.unit)}, {self._effect()}, p={self.p_value:.2g}, "
                f"n={self.stable_samples:,.0f}/{self.canary_samples:,.0f}: {self.reason}")

    def _effect(self) -> str:
        if self.effect == "difference":
            return f"difference {self.effect_size * 100:+.3g} points"
        return f"{self.effect} {self.effect_size:.3g}"

    def as_dict(self) -> dict[str, Any]:
        return {key: _plain(getattr(self, key)) for key in self.__dataclass_fields__}


@dataclass(frozen=True)
class Verdict:
    """The step's verdict. `decisive`: it ends the step (a pass or fail that crossed this
    look's threshold, or any outcome at the final look); otherwise keep observing."""

    outcome: Outcome
    decisive: bool
    final: bool
    look: int
    intervals: int
    stable_requests: float
    canary_requests: float
    stable_error_ratio: float
    canary_error_ratio: float
    stable_p95: float
    canary_p95: float
    metrics: tuple[MetricResult, ...]
    reason: str

    def explain(self) -> str:
        when = "final look" if self.final else f"look {self.look}"
        metrics = "; ".join(f"{m.name} {m.outcome} (p={m.p_value:.2g}, {m._effect()})" for m in self.metrics)
        waiting = "" if self.decisive else ", not decisive"
        return (f"{self.outcome} ({when}, {self.intervals} intervals{waiting}): error ratio "
                f"{format_value(self.stable_error_ratio, Unit.RATIO)} stable vs "
                f"{format_value(self.canary_error_ratio, Unit.RATIO)} canary, p95 "
                f"{format_value(self.stable_p95, Unit.SECONDS)} vs "
                f"{format_value(self.canary_p95, Unit.SECONDS)}, "
                f"{self.stable_requests:,.0f}/{self.canary_requests:,.0f} requests; {metrics}. "
                f"{self.reason}")

    def as_dict(self) -> dict[str, Any]:
        data = {key: _plain(getattr(self, key)) for key in self.__dataclass_fields__ if key != "metrics"}
        return {**data, "metrics": [m.as_dict() for m in self.metrics]}


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value) if isinstance(value, Unit) else value


def analyse(stable: Sequence[Interval], canary: Sequence[Interval], settings: AnalysisSettings, *,
            final: bool = False) -> Verdict:
    """The verdict on the canary after the intervals so far (both lists cover the same
    intervals). `final` marks the step's last look: held to a looser threshold than the early
    ones, and decisive whatever its outcome."""
    s, c = _totals(stable, "stable"), _totals(canary, "canary")
    if s.bounds and c.bounds and s.bounds != c.bounds:
        raise ObservationError(f"stable and canary histograms have different bounds ({list(s.bounds)} and "
                               f"{list(c.bounds)}): compare the same histogram")
    intervals = min(s.intervals, c.intervals)
    look_number = max(0, intervals - settings.min_intervals + 1)
    look = _Look.of(settings, look_number, final)
    metrics = [_errors(s, c, settings, look), _latency(s, c, settings, look),
               _tail("latency_tail", s, c, 1 + settings.latency_margin, look),
               _tail("p95", s, c, settings.max_latency_factor, look)]
    planned = max((m.needed for m in metrics if math.isfinite(m.needed)), default=0.0)
    short = _shortfall(s, c, settings, planned)
    if short is None:
        outcome, reason = _overall(metrics, min(s.requests, c.requests), intervals, final)
    else:
        metrics = [replace(m, outcome="inconclusive", reason=short) for m in metrics]
        outcome, reason = "inconclusive", short
    return Verdict(outcome, outcome != "inconclusive" or final, final, look_number, intervals, s.requests,
                   c.requests, s.error_ratio, c.error_ratio, s.quantile(histogram.P95),
                   c.quantile(histogram.P95), tuple(metrics), reason)


def _overall(metrics: Sequence[MetricResult], fewest: float, intervals: int,
             final: bool) -> tuple[Outcome, str]:
    failed = [m for m in metrics if m.outcome == "fail"]
    if failed:
        return "fail", "; ".join(f"{m.name}: {m.reason}" for m in failed)
    undecided = [m for m in metrics if m.outcome != "pass"]
    if not undecided:
        return "pass", "every metric is within its margin"
    needed = max(m.needed for m in undecided)
    more = ""
    if math.isfinite(needed) and needed > fewest:
        more = (f"; about {needed:,.0f} requests per version would likely settle it (have {fewest:,.0f})"
                f"{_at_this_rate(needed, fewest, intervals)}")
    names = ", ".join(m.name for m in undecided)
    return "inconclusive", f"{'no verdict at the final look' if final else 'not yet clear'}: {names}{more}"


def _shortfall(s: _Totals, c: _Totals, settings: AnalysisSettings, planned: float) -> str | None:
    """Why there is too little traffic for any verdict, or None when there is enough; with
    `planned`, the requests per version that would likely settle the step, when more."""
    fewest, intervals = min(s.requests, c.requests), min(s.intervals, c.intervals)
    if fewest >= settings.min_requests and intervals >= settings.min_intervals:
        return None
    wants = []
    if fewest < settings.min_requests:
        wants.append(f"{settings.min_requests - fewest:,.0f} more requests per version")
    if intervals < settings.min_intervals:
        wants.append(_plural(settings.min_intervals - intervals, "more interval"))
    settle = (f"; about {planned:,.0f} requests per version would likely settle it"
              f"{_at_this_rate(planned, fewest, intervals)}" if planned > settings.min_requests else "")
    return (f"too little traffic to judge: {s.requests:,.0f} stable and {c.requests:,.0f} canary requests "
            f"in {_plural(intervals, 'interval')}; needs {' and '.join(wants)}"
            f"{_at_this_rate(settings.min_requests, fewest, intervals)} before any verdict{settle}")


def _at_this_rate(needed: float, have: float, intervals: int) -> str:
    if have <= 0 or intervals <= 0 or needed <= have:
        return ""
    return f" (about {_plural(math.ceil((needed - have) * intervals / have), 'more interval')} at this rate)"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class _Look:
    """This look's thresholds: each fail test's alpha, each pass test's alpha, and the z
    (final threshold plus power) that the traffic estimate plans with."""

    fail: float
    pass_: float
    plan_z: float

    @classmethod
    def of(cls, settings: AnalysisSettings, look: int, final: bool) -> _Look:
        alpha = 1 - settings.confidence
        final_alpha = alpha * (1 - settings.early_share)
        k = max(look, 1)
        spend = final_alpha if final else alpha * settings.early_share / (k * (k + 1))
        plan_z = _NORMAL.inv_cdf(1 - final_alpha) + _NORMAL.inv_cdf(settings.power)
        return cls(fail=spend / FAIL_TESTS, pass_=spend, plan_z=plan_z)

    def outcome(self, worse: float, within: float) -> tuple[Outcome, float, float]:
        """(outcome, its p-value, its threshold) from the p-values of the two sides."""
        if worse <= self.fail:
            return "fail", worse, self.fail
        if within <= self.pass_:
            return "pass", within, self.pass_
        return ("inconclusive", worse, self.fail) if worse / self.fail <= within / self.pass_ \
            else ("inconclusive", within, self.pass_)

    def needed(self, variance: float, effect: float) -> float:
        """Requests per version for a normal test to show `effect` at the final threshold with
        the configured power."""
        return math.ceil(self.plan_z**2 * variance / effect**2) if effect > 0 else math.inf


def _evidence(test: str, p: float, threshold: float) -> str:
    relation = "≤" if p <= threshold else "needs ≤"
    return f"({test} p={p:.2g}, {relation} {threshold:.2g})"


def _errors(s: _Totals, c: _Totals, settings: AnalysisSettings, look: _Look) -> MetricResult:
    from scipy import stats  # imported by the first analysis, not by every command

    n_s, n_c = round(s.requests), round(c.requests)
    x_s, x_c = min(round(s.errors), n_s), min(round(c.errors), n_c)
    margin, limit = settings.error_margin, settings.max_error_ratio
    if n_s == 0 or n_c == 0:
        return MetricResult("errors", "inconclusive", s.error_ratio, c.error_ratio, 1.0, math.nan, n_s, n_c,
                            "no requests to compare yet", alpha=look.pass_)
    ratio_s, ratio_c = x_s / n_s, x_c / n_c
    z = _difference_z(x_c, n_c, x_s, n_s, margin)
    worse, within = _NORMAL.cdf(-z), _NORMAL.cdf(z)
    over, under = float(stats.binom.sf(x_c - 1, n_c, limit)), float(stats.binom.cdf(x_c, n_c, limit))
    points = f"{margin * 100:g} point{'' if margin == 0.01 else 's'}"
    shown = f"{format_value(ratio_c, Unit.RATIO)} vs stable's {format_value(ratio_s, Unit.RATIO)}"
    limit_text = f"the {format_value(limit, Unit.RATIO)} limit"
    bounded = f"within {points} of stable's and below {limit_text}"
    sides: list[tuple[Outcome, float, float, str, str]] = [
        ("fail", worse, look.fail, "score test", f"error ratio {shown}: worse by more than {points}"),
        ("fail", over, look.fail, "binomial test",
         f"error ratio {format_value(ratio_c, Unit.RATIO)} is above {limit_text}"),
        ("pass", max(within, under), look.pass_, "score and binomial tests",
         f"error ratio {shown}: {bounded}"),
    ]
    decided = [side for side in sides if side[1] <= side[2]]
    outcome, p, held, test, reason = decided[0] if decided else min(sides, key=lambda side: side[1] / side[2])
    if not decided:
        outcome, reason = "inconclusive", f"error ratio {shown}: not yet shown {bounded}"
    base = min(ratio_s, 1 - margin)
    needed = max(look.needed(base * (1 - base) + (base + margin) * (1 - base - margin), margin),
                 look.needed(limit * (1 - limit), limit - ratio_c))
    return MetricResult("errors", outcome, ratio_s, ratio_c, p, ratio_c - ratio_s, n_s, n_c,
                        f"{reason} {_evidence(test, p, held)}", alpha=held, needed=needed)


def _latency(s: _Totals, c: _Totals, settings: AnalysisSettings, look: _Look) -> MetricResult:
    median_s, median_c = s.quantile(0.5), c.quantile(0.5)
    if not s.latency_samples or not c.latency_samples:
        return _no_histogram("latency", median_s, median_c, s, c, look)
    slowed = histogram.slowed(s.bounds, s.counts, 1 + settings.latency_margin)
    effect, _, _ = histogram.rank_test(c.counts, s.counts)
    _, worse, within = histogram.rank_test(c.counts, slowed)
    margin_effect, _, _ = histogram.rank_test(slowed, s.counts)
    outcome, p, held = look.outcome(worse, within)
    percent = format_value(settings.latency_margin, Unit.RATIO)
    reason = {"fail": f"requests slower than stable's by more than {percent}",
              "pass": f"requests not slower than stable's by {percent}",
              "inconclusive": f"not yet clear whether requests are {percent} slower than stable's"}[outcome]
    return MetricResult("latency", outcome, median_s, median_c, p, effect, s.latency_samples,
                        c.latency_samples, f"{reason} {_evidence('Mann-Whitney', p, held)}",
                        unit=Unit.SECONDS, effect="P(slower)", alpha=held,
                        needed=look.needed(1 / 6, margin_effect - 0.5))


def _tail(name: str, s: _Totals, c: _Totals, factor: float, look: _Look) -> MetricResult:
    """The share of requests slower than one bucket bound, canary against the stable release
    slowed by `factor`, by Fisher's exact test: for latency_tail at the tail bound where the
    slowing shows most clearly, for p95 at the bound below the slowed release's p95."""
    from scipy import stats  # imported by the first analysis, not by every command

    if not s.latency_samples or not c.latency_samples:
        return _no_histogram(name, math.nan, math.nan, s, c, look)
    slowed = histogram.slowed(s.bounds, s.counts, factor)
    cut = (histogram.tail_bound(s.bounds, s.counts, slowed) if name == "latency_tail"
           else histogram.p95_bound(s.bounds, slowed))
    n_s, n_c = round(s.latency_samples), round(c.latency_samples)
    share_s, share_r, share_c = (sum(n[cut + 1:]) / sum(n) for n in (s.counts, slowed, c.counts))
    over_c, over_r = round(share_c * n_c), round(share_r * n_s)
    table = [[over_c, n_c - over_c], [over_r, n_s - over_r]]
    worse = float(stats.fisher_exact(table, alternative="greater").pvalue)
    within = float(stats.fisher_exact(table, alternative="less").pvalue)
    outcome, p, held = look.outcome(worse, within)
    relation = {"fail": "more than", "pass": "fewer than", "inconclusive": "not yet told from"}[outcome]
    reason = (f"{format_value(share_c, Unit.RATIO)} of requests slower than "
              f"{format_value(s.bounds[cut], Unit.SECONDS)}, {relation} the "
              f"{format_value(share_r, Unit.RATIO)} of the stable release slowed {factor:.3g}x "
              f"{_evidence('Fisher', p, held)}")
    needed = look.needed(share_s * (1 - share_s) + share_r * (1 - share_r), share_r - share_s)
    if name == "latency_tail":
        return MetricResult(name, outcome, share_s, share_c, p, share_c - share_s, n_s, n_c, reason,
                            alpha=held, needed=needed)
    p95_s, p95_c = (histogram.quantile(histogram.P95, s.bounds, n) for n in (s.counts, c.counts))
    return MetricResult(name, outcome, p95_s, p95_c, p, p95_c / p95_s if p95_s > 0 else math.nan, n_s, n_c,
                        reason, unit=Unit.SECONDS, effect="ratio", alpha=held, needed=needed)


def _no_histogram(name: str, stable: float, canary: float, s: _Totals, c: _Totals,
                  look: _Look) -> MetricResult:
    return MetricResult(name, "inconclusive", stable, canary, 1.0, math.nan, s.latency_samples,
                        c.latency_samples, "no latency histogram for both versions yet", unit=Unit.SECONDS,
                        alpha=look.pass_)


@dataclass(frozen=True)
class _Totals:
    """One version's intervals added up; `counts` are requests per bucket, not cumulative."""

    intervals: int
    requests: float
    errors: float
    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan

    def quantile(self, q: float) -> float:
        return histogram.quantile(q, self.bounds, self.counts)

    @property
    def latency_samples(self) -> float:
        """Requests the histogram counted; 0 without a histogram of at least one finite bound."""
        return sum(self.counts) if len(self.bounds) > 1 else 0.0


def _totals(intervals: Sequence[Interval], side: str) -> _Totals:
    bounds: tuple[float, ...] = ()
    cumulative: list[float] = []
    for index, interval in enumerate(intervals):
        if not interval.buckets:
            continue
        these = tuple(le for le, _ in interval.buckets)
        if not bounds:
            bounds, cumulative = these, [0.0] * len(these)
        elif these != bounds:
            raise ObservationError(f"{side} interval {index} has histogram bounds {list(these)}, the earlier "
                                   f"ones {list(bounds)}: use one histogram for a step")
        for k, (_, count) in enumerate(interval.buckets):
            cumulative[k] += count
    counts = tuple(max(0.0, total - (cumulative[k - 1] if k else 0.0)) for k, total in enumerate(cumulative))
    return _Totals(len(intervals), sum(i.requests for i in intervals), sum(i.errors for i in intervals),
                   bounds, counts)


def _difference_z(x1: int, n1: int, x2: int, n2: int, margin: float) -> float:
    """The Farrington-Manning score statistic for H0: p1 - p2 = margin (p1 the canary's ratio),
    with the maximum-likelihood estimates under H0 in closed form."""
    p1, p2, theta = x1 / n1, x2 / n2, n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + margin * (theta + 2))
    c = margin * margin + margin * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * margin * (1 + margin)
    v = b**3 / (27 * a**3) - b * c / (6 * a * a) + d / (2 * a)
    u = math.copysign(math.sqrt(max(0.0, b * b / (9 * a * a) - c / (3 * a))), v)
    angle = math.acos(max(-1.0, min(1.0, v / u**3))) if u else math.pi / 2
    r1 = min(1.0, max(margin, 2 * u * math.cos((math.pi + angle) / 3) - b / (3 * a)))
    r2 = r1 - margin
    variance = r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2
    return (p1 - p2 - margin) / math.sqrt(variance) if variance > 0 else 0.0


@dataclass(frozen=True)
class FlaggerCheck:
    """One interval's check as Flagger runs it: the canary alone against fixed limits."""

    error_ratio: float
    p99: float
    failed: bool
    reason: str


@dataclass(frozen=True)
class FlaggerVerdict:
    """Rolled back ("fail") at the check that made `threshold` failures, else promoted ("pass")
    after the last; `decided_at` is the number of intervals seen then."""

    outcome: Literal["pass", "fail"]
    failed_checks: int
    decided_at: int
    checks: tuple[FlaggerCheck, ...]


def flagger_style(canary: Sequence[Interval], *, threshold: int = 5, max_error_ratio: float = 0.01,
                  max_p99: float = 0.5) -> FlaggerVerdict:
    """The baseline many tools use: each interval (Flagger's default: a minute) is a check that
    fails when the canary's error ratio is above `max_error_ratio`, its p99 above `max_p99`
    seconds, or there is no data; `threshold` failed checks roll the canary back."""
    checks: list[FlaggerCheck] = []
    for interval in canary:
        checks.append(_flagger_check(interval, max_error_ratio, max_p99))
        failed = sum(check.failed for check in checks)
        if failed >= threshold:
            return FlaggerVerdict("fail", failed, len(checks), tuple(checks))
    return FlaggerVerdict("pass", sum(check.failed for check in checks), len(checks), tuple(checks))


def _flagger_check(interval: Interval, max_error_ratio: float, max_p99: float) -> FlaggerCheck:
    totals = _totals([interval], "canary")
    p99 = totals.quantile(0.99)
    if interval.requests <= 0 or math.isnan(p99):
        return FlaggerCheck(totals.error_ratio, p99, True, "no data")
    ratio = totals.error_ratio
    problems = [f"error ratio {format_value(ratio, Unit.RATIO)}"] * (ratio > max_error_ratio)
    problems += [f"p99 {format_value(p99, Unit.SECONDS)}"] * (p99 > max_p99)
    return FlaggerCheck(ratio, p99, bool(problems), ", ".join(problems) or "ok")
