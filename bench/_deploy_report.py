"""The deploy benchmark's figures, goals and the Markdown section for docs/benchmarks.md."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

import deploy_analysis
from _common import histogram_quantile, machine

from opsplane.deploy.analysis import Interval, combine, flagger_style

GOAL_SECONDS = 60.0
FLAGGER_THRESHOLDS = (5, 2, 1)
OURS = "opsplane `analyse`"
FLAGGER = "Flagger-style, threshold 5"


# --- the recorded steps ------------------------------------------------------------------


def analysis_results(recordings: dict[str, dict[str, Any]], cut: dict[str, dict[str, Any]],
                     files: dict[str, str], cut_files: dict[str, str]) -> dict[str, Any]:
    """Both methods on the resampled steps and on each recording's own consecutive steps, and
    what each recording holds."""
    return {
        "resampled": deploy_analysis.replay(_merged(cut.values()), FLAGGER_THRESHOLDS),
        "consecutive": deploy_analysis.replay(_merged(recordings.values()), FLAGGER_THRESHOLDS),
        "recordings": {kind: describe(data) for kind, data in recordings.items()},
        "files": files, "cut_files": cut_files,
    }


def _merged(files: Any) -> dict[str, Any]:
    files = list(files)
    return {"interval_seconds": files[0]["interval_seconds"],
            "analyses": [step for data in files for step in data["analyses"]]}


def describe(data: dict[str, Any]) -> dict[str, Any]:
    """A recording's totals per release, and Flagger's one-minute checks over the whole stream
    from its start: how many failed, and the minute of the fifth (its rollback)."""
    stream = {side: [Interval.from_dict(i) for i in data["recording"][side]] for side in ("stable", "canary")}
    per_check = round(60 / float(data["interval_seconds"]))
    canary = stream["canary"]
    checks = [combine(canary[i:i + per_check]) for i in range(0, len(canary) - per_check + 1, per_check)]
    verdict = flagger_style(checks, threshold=5)
    every = flagger_style(checks, threshold=len(checks) + 1)
    totals = {}
    for side, intervals in stream.items():
        whole = combine(intervals)
        totals[side] = {"requests": whole.requests, "errors": whole.errors,
                        "error_ratio": whole.errors / whole.requests if whole.requests else None,
                        **{f"p{q}": histogram_quantile(q / 100, whole.buckets) for q in (50, 95, 99)}}
    return {**data["recorded"], "steps": len(data["analyses"]), "totals": totals,
            "flagger_stream": {"checks": len(checks), "failed": every.failed_checks,
                               "rollback_minute": verdict.decided_at if verdict.outcome == "fail" else None}}


# --- goals -------------------------------------------------------------------------------


def goal_rows(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, figures) for every goal the run measured."""
    rows: list[tuple[str, bool, str]] = []
    runs = results.get("safety") or []
    for key in dict.fromkeys((r["service"], r["release"]) for r in runs):
        mine = [r for r in runs if (r["service"], r["release"]) == key]
        times = [r["time_to_safety"] for r in mine if r["time_to_safety"] is not None]
        ok = len(times) == len(mine) and max(times) <= GOAL_SECONDS
        shown = ", ".join(f"{t:.1f} s" for t in times) or "none rolled back"
        rows.append((f"{key[0]} {key[1]}: time to safety <= {GOAL_SECONDS:g} s in every run", ok,
                     f"{shown} ({len(times)} of {len(mine)} rolled back)"))
    analysis = results.get("analysis")
    if analysis:
        for kind, found in analysis["resampled"][OURS].items():
            hits = sum(row["outcome"] == "fail" for row in found)
            share = hits / len(found)
            if found[0]["worse"]:
                rows.append((f"{kind}: caught >= 99 % (resampled steps)", share >= 0.99,
                             f"{100 * share:.1f}% ({hits}/{len(found)})"))
            else:
                rows.append((f"{kind}: false rollbacks <= 1 % (resampled steps)", share <= 0.01,
                             f"{100 * share:.1f}% ({hits}/{len(found)})"))
    for engine in results.get("switch") or []:
        rows.append((f"{engine['engine']} switch: no failed request, no stale answer",
                     engine["failed"] == 0 and engine["stale_answers"] == 0,
                     f"{engine['failed']} failed, {engine['stale_answers']} stale of {engine['requests']:,}"))
    return rows


def met(results: dict[str, Any]) -> bool:
    return all(ok for _, ok, _ in goal_rows(results))


# --- Markdown ----------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    lines = ["## Deploys", "", _measured(results), "", "```", results.get("command", ""), "```", ""]
    if results.get("safety"):
        lines += _safety(results["safety"], results.get("analysis"), results.get("settings", {}))
    if results.get("analysis"):
        lines += _analysis(results["analysis"], results.get("settings", {}))
    if results.get("switch"):
        lines += _switch(results["switch"], results.get("settings", {}))
    lines += ["| Goal | Result | Figures |", "| --- | --- | --- |"]
    lines += [f"| {goal} | {'met' if ok else 'NOT MET'} | {figures} |"
              for goal, ok, figures in goal_rows(results)]
    return "\n".join(lines)


def _measured(results: dict[str, Any]) -> str:
    box = machine()
    readings = results.get("load_average") or []
    during = (f"; 1-minute load average {min(readings):.2f} to {max(readings):.2f} during the run "
              f"(median {statistics.median(readings):.2f}; {results.get('load_average_start', 0):.2f} at the "
              f"start, {results.get('load_average_end', 0):.2f} at the end)") if readings else ""
    return (f"Measured on {results['date']}: {box.describe()}; `nproc` {os.cpu_count()}, "
            f"/proc/cpuinfo model name: {box.cpu_model}{during}.")


def _median(values: Sequence[float | None]) -> str:
    found = [v for v in values if v is not None]
    return f"{statistics.median(found):.1f} s" if found else "-"


def _safety(runs: Sequence[dict[str, Any]], analysis: dict[str, Any] | None,
            settings: dict[str, Any]) -> list[str]:
    lines = ["### Time to safety", "",
             f"`opsplane deploy SERVICE RELEASE --strategy canary --initial-percent "
             f"{settings.get('initial_percent', 50):g}` under {settings.get('rate', 40):g} requests a second "
             "to the service through nginx; the demo inventory's canary settings (5 s analysis "
             "intervals, a 60 s step), `serve` scraping every 5 s. Time to safety: from the command to "
             "the last answer carrying the canary's `X-Version`; every answer after it came from v1.", "",
             "| Canary | Runs | Rolled back | Time to safety, median (range) | Canary's first answer | "
             "Rollback decided | Canary answers (5xx) | Flagger-style on the same samples |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    streams = (analysis or {}).get("recordings", {})
    for key in dict.fromkeys((r["service"], r["release"]) for r in runs):
        mine = [r for r in runs if (r["service"], r["release"]) == key]
        times = [r["time_to_safety"] for r in mine if r["time_to_safety"] is not None]
        spread = f" ({min(times):.1f}-{max(times):.1f} s)" if len(times) > 1 else ""
        answers = sum(r["canary_answers"] for r in mine)
        errors = sum(r["canary_errors"] for r in mine)
        rolled = sum(r["state"] == "rolled_back" for r in mine)
        lines.append(f"| {key[0]} {key[1]} | {len(mine)} | {rolled} | {_median(times)}{spread} | "
                     f"{_median([r['first_canary_answer'] for r in mine])} | "
                     f"{_median([r['rollback_decided'] for r in mine])} | {answers:,} ({errors}) | "
                     f"{_flagger_cell(mine, streams.get(f'{key[0]} {key[1]}'))} |")
    lines += ["", "Each run (seconds from the command; load average while it ran):", "",
              "| Canary | State | First canary answer | Rollback decided | Last canary answer | Requests/s | "
              "Canary share | Load average | Why it was rolled back |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in runs:
        last = "-" if r["time_to_safety"] is None else f"{r['time_to_safety']:.1f}"
        first = "-" if r["first_canary_answer"] is None else f"{r['first_canary_answer']:.1f}"
        decided = "-" if r["rollback_decided"] is None else f"{r['rollback_decided']:.1f}"
        load = r["load_average"]
        lines.append(f"| {r['service']} {r['release']} | {r['state']} | {first} | {decided} | {last} | "
                     f"{r['rate']:.1f} | {100 * r['canary_share']:.0f}% | "
                     f"{min(load):.1f}-{max(load):.1f} | {r['reason']} |")
    return [*lines, ""]


def _flagger_cell(runs: Sequence[dict[str, Any]], stream: dict[str, Any] | None) -> str:
    flagger = [r["flagger"] for r in runs]
    rolled = sum(f.get("outcome") == "rolled back" for f in flagger)
    life = [f["whole_life"] for f in flagger if f.get("whole_life")]
    lived = max((f.get("canary_seconds", 0.0) for f in flagger), default=0.0)
    cell = (f"rolled back in {rolled} of {len(runs)} runs" if rolled else
            f"not rolled back in any run: the canary lived at most {lived:.0f} s, "
            f"{max(f.get('checks', 0) for f in flagger)} one-minute checks completed of the 5 that must fail")
    if life:
        failing = sum(x["would_fail"] for x in life)
        cell += (f"; the canary's whole life as one check: error ratio "
                 f"{100 * statistics.median(x['error_ratio'] or 0 for x in life):.2f}%, p99 "
                 f"{1000 * statistics.median(x['p99'] for x in life):.0f} ms, "
                 f"failing in {failing} of {len(life)}")
    if stream:
        flag = stream["flagger_stream"]
        cell += ("; on the recorded stream its 5th failed check came at minute "
                 f"{flag['rollback_minute']}" if flag["rollback_minute"] else
                 f"; on the recorded stream it never rolled back ({flag['failed']} of {flag['checks']} "
                 "checks failed)")
    return cell


def _analysis(analysis: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    recordings = analysis["recordings"]
    first = next(iter(recordings.values()))
    lines = ["### Canary analysis on recorded traffic", "",
             f"Each pair is two shop processes behind nginx at 50/50, each release at "
             f"{first['rate_per_release']:g} requests a second, {first['intervals']} intervals of 10 s "
             f"({first['intervals'] / 6:.0f} minutes); the pairs of one service were recorded at the same "
             "time, one service after the other. Orders' load is checkouts of carts written into the "
             "database beforehand; catalog's is product pages (50 %), products (30 %) and searches (20 %).",
             "", "| Pair | Recorded from (load average min-max, mean) | "
             "Stable: requests, 5xx, p50 / p95 / p99 | Canary: requests, 5xx, p50 / p95 / p99 | "
             "Consecutive steps | Flagger-style over the whole stream (one-minute checks) |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for kind, found in recordings.items():
        load = found["load_average"]
        when = f"{found['started']} ({load['min']:.1f}-{load['max']:.1f}, {load['mean']:.1f})"
        flag = found["flagger_stream"]
        minute = flag["rollback_minute"]
        rolled = f"5th failed check at minute {minute}" if minute else "never"
        lines.append(f"| {kind} | {when} | {_side(found['totals']['stable'])} | "
                     f"{_side(found['totals']['canary'])} | "
                     f"{found['steps']} | {flag['failed']} of {flag['checks']} failed; rolled back: "
                     f"{rolled} |")
    steps = settings.get("steps", 200)
    lines += ["", f"**{steps} steps of each pair**, windows of 12-30 intervals (2-5 minutes) at random "
              "starts, drawn with replacement from each recording (they overlap: see below):", "",
              *deploy_analysis.table(analysis["resampled"]), "",
              "**The recordings' own consecutive steps** (2-5 minutes each, not overlapping):", "",
              *deploy_analysis.table(analysis["consecutive"]), ""]
    return lines


def _side(totals: dict[str, Any]) -> str:
    ratio = totals["error_ratio"] or 0.0

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{1000 * value:.0f}"

    return (f"{totals['requests']:,.0f}, {100 * ratio:.2f}%, "
            f"{ms(totals['p50'])} / {ms(totals['p95'])} / {ms(totals['p99'])} ms")


def _switch(engines: Sequence[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    lines = ["### Blue-green switch", "",
             f"`bench/traffic_switch.py --switches {settings.get('switches', 20)}` in the same run: all "
             "traffic between two releases under 100 requests a second, one switch a second.", "",
             "| Engine | How | Switches | Requests (rate) | Failed | Resent | Switch time median / p95 | "
             "First new answer median / p95 | Stale answers |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in engines:
        how = "reload" if r["engine"] == "nginx" else "runtime API"
        first = "-" if r["first_new_median_ms"] is None else \
            f"{r['first_new_median_ms']:.0f} / {r['first_new_p95_ms'] or 0:.0f} ms"
        lines.append(f"| {r['engine']} {r['version']} | {how} | {r['switches']} | {r['requests']:,} "
                     f"({r['rate']:.0f}/s) | {r['failed']} | {r['resent']} | {r['apply_median_ms']:.1f} / "
                     f"{r['apply_p95_ms']:.1f} ms | {first} | {r['stale_answers']} |")
    return [*lines, ""]
