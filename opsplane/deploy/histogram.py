"""Latency histograms as the canary analysis reads them: bucket bounds with the requests counted in
each bucket (not cumulative), quantiles interpolated as Prometheus's histogram_quantile does, the
same requests slowed by a factor, the bounds the tail tests compare at, and the rank test of two
tables of bucket counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

TAIL_SHARE = 0.10  # latency_tail reads a bound that at most this share of stable requests exceed
P95 = 0.95
_NORMAL = NormalDist()


def tail_bound(bounds: Sequence[float], stable: Sequence[float], slowed: Sequence[float]) -> int:
    """Of the bounds that at most TAIL_SHARE of the stable requests exceed (where the buckets
    are too coarse for that, half of them), the one where the stable release and its slowed
    self differ by most standard errors: the tail bound where the comparison has most power.
    Chosen from the stable release alone, so the canary cannot choose where it is judged."""
    total_s, total_r = sum(stable), sum(slowed)
    gaps: dict[int, tuple[float, float]] = {}
    for k in range(len(bounds) - 1):
        q_s, q_r = sum(stable[k + 1:]) / total_s, sum(slowed[k + 1:]) / total_r
        spread = math.sqrt(q_s * (1 - q_s) + q_r * (1 - q_r))
        if q_s > 0 and spread > 0:
            gaps[k] = (q_s, (q_r - q_s) / spread)
    for share in (TAIL_SHARE, 0.5):
        tail = {k: gap for k, (q_s, gap) in gaps.items() if q_s <= share}
        if tail:
            return max(tail, key=lambda k: tail[k])
    return p95_bound(bounds, slowed)


def p95_bound(bounds: Sequence[float], counts: Sequence[float]) -> int:
    """The largest bound at or below the p95 of `counts`, so that at least 5% of them lie above
    it (the first bound when the p95 is inside the first bucket)."""
    p95 = quantile(P95, bounds, counts)
    return max((k for k in range(len(bounds) - 1) if bounds[k] <= p95), default=0)


def quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The q-quantile interpolated inside its bucket, as Prometheus's histogram_quantile does."""
    total = sum(counts)
    if total <= 0 or len(bounds) < 2:
        return math.nan
    rank, below = q * total, 0.0
    for k, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            if math.isinf(bounds[k]):
                return bounds[k - 1]
            lower = bounds[k - 1] if k else 0.0
            return lower + (bounds[k] - lower) * (rank - below) / count
        below += count
    return bounds[-2]


def slowed(bounds: Sequence[float], counts: Sequence[float], factor: float) -> list[float]:
    """The bucket counts of the same requests each taking `factor` times as long: the count
    slower than bound b becomes the count that was slower than b / factor."""
    total, above, running = sum(counts), [], 0.0
    for count in counts:
        running += count
        above.append(max(0.0, total - running))
    slower = [_above(b / factor, bounds, above, total) if math.isfinite(b) else 0.0 for b in bounds]
    return [max(0.0, (slower[k - 1] if k else total) - slower[k]) for k in range(len(bounds))]


def _above(x: float, bounds: Sequence[float], above: Sequence[float], total: float) -> float:
    """Requests slower than `x`, from the counts above each bound. Inside a bucket the share
    above is interpolated on the normal-quantile scale against log x: exact for a log-normal
    latency distribution, and close for skewed ones, whose tail falls off faster than the
    straight line histogram_quantile draws. Where a share is 0 or 1 (the first bucket, nothing
    above), linearly, as histogram_quantile does."""
    k = next(i for i, b in enumerate(bounds) if x <= b)
    lower, at_lower = (bounds[k - 1], above[k - 1]) if k else (0.0, total)
    if k and 0 < above[k] and at_lower < total:
        z_lower, z_upper = _NORMAL.inv_cdf(1 - at_lower / total), _NORMAL.inv_cdf(1 - above[k] / total)
        z = z_lower + (z_upper - z_lower) * math.log(x / lower) / math.log(bounds[k] / lower)
        return total * (1 - _NORMAL.cdf(z))
    return at_lower - (at_lower - above[k]) * (x - lower) / (bounds[k] - lower)


def rank_test(canary: Sequence[float], reference: Sequence[float]) -> tuple[float, float, float]:
    """Mann-Whitney on two tables of bucket counts: (P(a canary request is slower) + half the
    ties, p that the canary is slower, p that it is faster), tie-corrected, continuity-corrected."""
    n1, n2 = sum(canary), sum(reference)
    total = n1 + n2
    if n1 <= 0 or n2 <= 0 or total <= 1:
        return math.nan, 1.0, 1.0
    u, below, ties = 0.0, 0.0, 0.0
    for c, r in zip(canary, reference, strict=True):
        u += c * (below + r / 2)
        below += r
        ties += (c + r) ** 3 - (c + r)
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1)))
    if variance <= 0:
        return u / (n1 * n2), 1.0, 1.0
    sd, mean = math.sqrt(variance), n1 * n2 / 2
    return u / (n1 * n2), _NORMAL.cdf((mean + 0.5 - u) / sd), _NORMAL.cdf((u - mean + 0.5) / sd)
