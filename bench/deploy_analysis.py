"""Canary analysis replayed: how often opsplane's `analyse` and Flagger-style fixed limits roll
back a canary that is as good as the stable release, catch one that is not, and how soon.

    .venv/bin/python bench/deploy_analysis.py [--analyses 200] [--seed 1] [--no-save]
    .venv/bin/python bench/deploy_analysis.py --write FILE       # the synthetic steps, as a replay file
    .venv/bin/python bench/deploy_analysis.py --recorded FILE    # steps recorded from a real shop

Input is a replay file (JSON) of steps, each the stable and the canary release's intervals as
`Interval.as_dict` writes them and a label saying whether the canary is worse:

    {"interval_seconds": 10,
     "analyses": [{"name": "v2-bad-0007", "kind": "v2-bad", "canary_is_worse": true,
                   "stable": [{"requests": 203, "errors": 1, "latency_sum": 9.8,
                               "buckets": [[0.001, 0], ..., ["+Inf", 203]]}, ...],
                   "canary": [...]}]}

Without `--recorded` the steps are synthesised, `--analyses` of each kind: v1-vs-v1 (the
canary is the stable release), v2-bad (the canary answers 5 % errors) and v2-slow (each canary
request takes 300 ms longer). Per step: 15-25 requests a second to each version (Poisson per
10 s interval), a stable error ratio between 0.1 % and 0.8 %, latencies log-normal with a
median of 20-80 ms and a spread (sigma) of 0.4-0.7, plus 2 % slow requests at 4-8 times the
median (cache misses), counted in the shop's LATENCY_BUCKETS; steps last 2-5 minutes.

Each step is analysed twice:

- opsplane: `analyse` after every interval with the default `AnalysisSettings`, the step's last
  interval as the final look, until a verdict is decisive; "fail" is a rollback.
- Flagger-style: `flagger_style` over one-minute checks (six intervals combined), error ratio
  above 1 % or p99 above 500 ms fails a check; `threshold` failed checks roll back, for each
  of `--flagger-thresholds` (default 5, Flagger's default, then 2 and 1); the step's full
  minutes only, so a threshold of 5 cannot roll back within a step shorter than five minutes.

Figures: false rollbacks of v1-vs-v1 (goal <= 1 %), share of v2-bad and v2-slow rolled back
within the step (goal >= 99 %), share of v1-vs-v1 promoted within the step (opsplane may end a
step inconclusive: not enough evidence either way), and the median number of 10 s intervals
to the verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsplane.deploy.analysis import (  # noqa: E402
    AnalysisSettings,
    Interval,
    analyse,
    combine,
    flagger_style,
)
from shop.telemetry import LATENCY_BUCKETS  # noqa: E402

INTERVAL_SECONDS = 10
KINDS = ("v1-vs-v1", "v2-bad", "v2-slow")
BOUNDS = (*LATENCY_BUCKETS, float("inf"))


@dataclass(frozen=True)
class Release:
    """How one release answers in a synthetic step."""

    rate: float
    error_ratio: float
    median: float
    sigma: float
    delay: float = 0.0

    def interval(self, rng: np.random.Generator) -> Interval:
        count = int(rng.poisson(self.rate * INTERVAL_SECONDS))
        slow = rng.random(count) < 0.02
        scale = np.where(slow, self.median * rng.uniform(4, 8, count), self.median)
        latencies = scale * np.exp(self.sigma * rng.standard_normal(count)) + self.delay
        cumulative = np.searchsorted(np.sort(latencies), LATENCY_BUCKETS, side="right").tolist()
        buckets = tuple(zip(BOUNDS, [*map(float, cumulative), float(count)], strict=True))
        return Interval(float(count), float(rng.binomial(count, self.error_ratio)), float(latencies.sum()),
                        buckets)


def synthesise(per_kind: int, seed: int) -> dict[str, Any]:
    """A replay file's content: `per_kind` steps of each of KINDS."""
    analyses = []
    for kind in KINDS:
        for index in range(per_kind):
            rng = np.random.default_rng([seed, KINDS.index(kind), index])
            stable = Release(rate=rng.uniform(15, 25), error_ratio=float(np.exp(rng.uniform(np.log(0.001),
                                                                                        np.log(0.008)))),
                             median=rng.uniform(0.02, 0.08), sigma=rng.uniform(0.4, 0.7))
            canary = {"v1-vs-v1": stable,
                      "v2-bad": replace(stable, error_ratio=0.05),
                      "v2-slow": replace(stable, delay=0.3)}[kind]
            length = int(rng.integers(12, 31))
            analyses.append({
                "name": f"{kind}-{index:04d}", "kind": kind, "canary_is_worse": kind != "v1-vs-v1",
                "stable": [stable.interval(rng).as_dict() for _ in range(length)],
                "canary": [canary.interval(rng).as_dict() for _ in range(length)],
            })
    return {"interval_seconds": INTERVAL_SECONDS, "analyses": analyses}


@dataclass(frozen=True)
class Outcome:
    """One method's verdict on one step: the outcome and the intervals seen when it came."""

    outcome: str
    intervals: int


def run_opsplane(stable: Sequence[Interval], canary: Sequence[Interval],
                 settings: AnalysisSettings) -> Outcome:
    for seen in range(1, len(stable) + 1):
        verdict = analyse(stable[:seen], canary[:seen], settings, final=seen == len(stable))
        if verdict.decisive:
            return Outcome(verdict.outcome, seen)
    return Outcome("inconclusive", len(stable))


def run_flagger(canary: Sequence[Interval], per_check: int, threshold: int) -> Outcome:
    checks = [combine(canary[i:i + per_check]) for i in range(0, len(canary) - per_check + 1, per_check)]
    verdict = flagger_style(checks, threshold=threshold)
    return Outcome(verdict.outcome, verdict.decided_at * per_check if verdict.outcome == "fail"
                   else len(checks) * per_check)


def replay(data: dict[str, Any], thresholds: Sequence[int]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per method and kind of step, each step's outcome and intervals to it."""
    settings = AnalysisSettings()
    per_check = max(1, round(60 / float(data.get("interval_seconds", INTERVAL_SECONDS))))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"opsplane `analyse`": {}}
    for step in data["analyses"]:
        stable = [Interval.from_dict(i) for i in step["stable"]]
        canary = [Interval.from_dict(i) for i in step["canary"]]
        kind = step.get("kind") or ("worse" if step["canary_is_worse"] else "equal")
        outcomes = [("opsplane `analyse`", run_opsplane(stable, canary, settings))]
        outcomes += [(f"Flagger-style, threshold {threshold}", run_flagger(canary, per_check, threshold))
                     for threshold in thresholds]
        for method, outcome in outcomes:
            results.setdefault(method, {}).setdefault(kind, []).append(
                {"name": step["name"], "worse": step["canary_is_worse"], "outcome": outcome.outcome,
                 "intervals": outcome.intervals, "length": len(canary)})
    return results


def _share(rows: Sequence[dict[str, Any]], outcome: str) -> str:
    if not rows:
        return "-"
    hits = sum(row["outcome"] == outcome for row in rows)
    return f"{100 * hits / len(rows):.1f}% ({hits}/{len(rows)})"


def _median_intervals(rows: Sequence[dict[str, Any]], outcome: str) -> str:
    reached = [row["intervals"] for row in rows if row["outcome"] == outcome]
    return f"{statistics.median(reached):g}" if reached else "-"


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    ours = next(iter(results.values()))
    equal = [kind for kind in ours if not ours[kind][0]["worse"]]
    worse = [kind for kind in ours if ours[kind][0]["worse"]]
    head = ["Method", *(f"False rollbacks, {k}" for k in equal), *(f"Promoted, {k}" for k in equal),
            *(f"Caught, {k}" for k in worse), f"Median intervals to verdict ({' / '.join(equal + worse)})"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for method, by_kind in results.items():
        cells = [method, *(_share(by_kind[k], "fail") for k in equal),
                 *(_share(by_kind[k], "pass") for k in equal), *(_share(by_kind[k], "fail") for k in worse),
                 " / ".join([*(_median_intervals(by_kind[k], "pass") for k in equal),
                             *(_median_intervals(by_kind[k], "fail") for k in worse)])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def goals(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """The goals for opsplane, met or not."""
    lines = ["| Goal | Result | Figures |", "| --- | --- | --- |"]
    for kind, rows in next(iter(results.values())).items():
        hits = sum(row["outcome"] == "fail" for row in rows)
        share = hits / len(rows)
        goal, met = (("caught >= 99%", share >= 0.99) if rows[0]["worse"]
                     else ("false rollbacks <= 1%", share <= 0.01))
        lines.append(f"| {kind} {goal} | {'met' if met else 'NOT MET'} | "
                     f"{100 * share:.1f}% ({hits}/{len(rows)}) |")
    return lines


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--analyses", type=int, default=200, help="synthetic steps of each kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--recorded", type=Path, help="a replay file of recorded steps instead")
    parser.add_argument("--write", type=Path, help="write the synthetic steps to this replay file and stop")
    parser.add_argument("--flagger-thresholds", default="5,2,1",
                        help="failed one-minute checks that roll back, comma-separated")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import machine

    data = json.loads(args.recorded.read_text()) if args.recorded else synthesise(args.analyses, args.seed)
    if args.write:
        args.write.write_text(json.dumps(data))
        print(f"{len(data['analyses'])} steps written to {args.write}")
        return 0
    began = time.perf_counter()
    results = replay(data, [int(t) for t in args.flagger_thresholds.split(",")])
    took = time.perf_counter() - began
    source = f"recorded steps from {args.recorded}" if args.recorded else (
        f"{args.analyses} synthetic steps of each kind (seed {args.seed})")
    lines = [
        "## Canary analysis", "",
        f"Measured on {date.today().isoformat()}: {machine().describe()}; {source}; "
        f"{len(data['analyses']):,} steps replayed in {took:.0f} s.", "",
        "```", " ".join([".venv/bin/python bench/deploy_analysis.py", *argv]), "```", "",
        *table(results), "", *goals(results),
    ]
    print("\n".join(lines))
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"deploy-analysis-{date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"\nfull results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
