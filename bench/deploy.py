"""Deploys on the real shop: time to safety of a bad canary, canary analysis on recorded traffic,
and the blue-green switch, each beside its baseline.

    .venv/bin/python bench/deploy.py                      # all three parts: about 80 minutes
    .venv/bin/python bench/deploy.py --parts safety --repeat 1 --no-save        # a quick look, 5 minutes
    .venv/bin/python bench/deploy.py --parts record --record-minutes 30 --data bench/data
    .venv/bin/python bench/deploy.py --replay bench/data  # the analysis part again, on saved recordings
    .venv/bin/python bench/deploy.py --resample bench/data/deploy-orders-v2-bad.json --out FILE

Everything runs on loopback in a temporary directory: PostgreSQL, Redis, the shop's services
under opsplane's process runtime with nginx in front (the demo's platform, `DemoStack`), and
`opsplane serve` as a child process on the same store.

1. **Time to safety** (`_deploy_safety.py`). Under `--rate` requests a second to the service
   through nginx (orders: checkouts; catalog: product pages, products, searches), `opsplane
   deploy SERVICE RELEASE --strategy canary --initial-percent P` of orders `v2-bad` (5 % of
   checkouts fail) and catalog `v2-slow` (300 ms more on product pages), `--repeat` times each.
   Measured from the command to the last answer carrying the canary's `X-Version`, after which
   every answer comes from the stable release. Beside it, Flagger's analysis (one-minute checks,
   threshold 5, 1 % errors, 500 ms p99) on the same samples `serve` scraped.
2. **Recording** (`_deploy_record.py`). Four pairs side by side behind nginx at 50/50, each
   release at `--record-rate` requests a second: catalog v1 vs v1, catalog v1 vs v2-slow, orders
   v1 vs v1, orders v1 vs v2-bad; 10 s intervals from each process's `/metrics` for
   `--record-minutes`. Saved in the replay format (`--data`), cut into `--steps` windows of 2-5
   minutes with replacement, and replayed through `analyse` and `flagger_style` as
   `bench/deploy_analysis.py --recorded` does.
3. **Blue-green switch**: `bench/traffic_switch.py` (all traffic between two releases,
   `--switches` times under load, nginx by reload against HAProxy by its runtime API).

Goals: time to safety <= 60 s in every run; on the recorded steps at most 1 % false rollbacks
of v1 vs v1 and at least 99 % of v2-bad and v2-slow caught; no failed request and no stale
answer in the switches. Exit status 0 when every goal is met, 2 when one is not, 1 when the
benchmark failed. The figures go to `bench/results/deploy-DATE.json` (`--no-save` skips it)
and a Markdown section for docs/benchmarks.md is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import ChildFailed, Children, raise_on_sigterm  # noqa: E402
from _deploy_load import LoadAverage, read_load_average  # noqa: E402
from _deploy_record import PAIRS, data_file, read, record, resample, save  # noqa: E402
from _deploy_report import analysis_results, markdown, met  # noqa: E402
from _deploy_safety import BAD_RELEASES, Platform, SafetyRun, as_dicts, opsplane_argv, run_canary  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTS = ("safety", "record", "switch")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: safety, record, switch")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="requests a second to the service through nginx during a canary")
    parser.add_argument("--initial-percent", type=float, default=50.0, help="the canary's share of requests")
    parser.add_argument("--repeat", type=int, default=5, help="canaries of each bad release")
    parser.add_argument("--record-minutes", type=float, default=30.0)
    parser.add_argument("--record-rate", type=float, default=20.0, help="requests a second per release")
    parser.add_argument("--steps", type=int, default=200, help="steps cut from each recording")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--data", type=Path, help="where recordings go (default: bench/results)")
    parser.add_argument("--replay", type=Path, metavar="DIR", help="replay the recordings in DIR and stop")
    parser.add_argument("--resample", type=Path, metavar="FILE", help="cut --steps steps from a recording")
    parser.add_argument("--out", type=Path, help="with --resample: the replay file to write")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or args.repeat < 1 or args.steps < 1 or not 0 < args.initial_percent < 100:
        parser.error(f"--parts takes {', '.join(PARTS)}; --repeat and --steps at least 1; "
                     "--initial-percent between 0 and 100")
    if args.resample and not args.out:
        parser.error("--resample needs --out FILE")
    return args


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_safety(platform: Platform, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[SafetyRun] = []
    for bad in BAD_RELEASES:
        for number in range(args.repeat):
            run = run_canary(platform, bad, rate=args.rate, clients=16, initial_percent=args.initial_percent,
                             warm_up=30.0 if not runs else 15.0, seed=args.seed + number)
            shown = "-" if run.time_to_safety is None else f"{run.time_to_safety:.1f} s"
            progress(f"  {bad.service} {bad.release}: {run.state}, time to safety {shown}")
            runs.append(run)
    return as_dicts(runs)


def run_recording(platform: Platform, args: argparse.Namespace, tmp: Path) -> dict[str, Path]:
    if platform.serve is not None:
        platform.serve.terminate(10)  # the recording reads the processes itself
    directory = args.data or RESULTS / f"deploy-data-{date.today().isoformat()}"
    written = {}
    for service in dict.fromkeys(pair.service for pair in PAIRS):
        # One service's pairs at a time: all four at once overloaded the 2-core machine (load
        # average near 20), so that two equal processes differed by how the CPU was shared.
        with Children() as recorders:
            recordings = record(platform, [p for p in PAIRS if p.service == service],
                                minutes=args.record_minutes, rate=args.record_rate, clients=24,
                                seed=args.seed, children=recorders, tmp=tmp / service, progress=progress)
        for pair, data in recordings.items():
            path = data_file(directory, pair)
            save(data, path)
            written[pair.kind] = path
    progress(f"recordings written to {directory}")
    return written


def run_switch(args: argparse.Namespace) -> list[dict[str, Any]]:
    import traffic_switch

    options = traffic_switch.parse_args(["--switches", str(args.switches)])
    results = []
    for engine in options.engines:
        with Children() as children:
            results.append(asdict(traffic_switch.run_engine(engine, options, children, progress)))
    return results


def replay_recordings(paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """Cut `--steps` steps from each recording into bench/results (or the temporary directory
    with --no-save), and replay them and the recordings' own consecutive steps."""
    recordings = {kind: read(path) for kind, path in paths.items()}
    cut_dir = RESULTS if not args.no_save else Path(tempfile.mkdtemp(prefix="opsplane-bench-steps-"))
    cut_files = {}
    for kind, data in recordings.items():
        out = cut_dir / f"{paths[kind].stem}-{args.steps}-steps.json"
        save(resample(data, steps=args.steps, seed=args.seed), out)
        cut_files[kind] = str(out)
    progress(f"replaying {args.steps} steps of each of {len(recordings)} recordings")
    return analysis_results(recordings, {k: read(Path(p)) for k, p in cut_files.items()},
                            {k: str(p) for k, p in paths.items()}, cut_files)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"date": date.today().isoformat(), "measured_at": datetime.now(UTC).isoformat(),
                               "settings": settings, "load_average_start": read_load_average()}
    with tempfile.TemporaryDirectory(prefix="opsplane-bench-deploy-", dir="/tmp") as name, \
            LoadAverage(30) as load:
        tmp = Path(name)
        if "safety" in args.parts or "record" in args.parts:
            with Children() as children:
                platform = Platform(children, tmp, opsplane_argv(ROOT), progress)
                try:
                    platform.start(serve="safety" in args.parts)
                    if "safety" in args.parts:
                        results["safety"] = run_safety(platform, args)
                    if "record" in args.parts:
                        paths = run_recording(platform, args, tmp)
                        results["recordings"] = {k: str(p) for k, p in paths.items()}
                finally:
                    platform.stop()
            if "record" in args.parts:
                results["analysis"] = replay_recordings(
                    {k: Path(p) for k, p in results["recordings"].items()}, args)
        if "switch" in args.parts:
            progress(f"bench/traffic_switch.py --switches {args.switches}")
            results["switch"] = run_switch(args)
    results["load_average"] = load.readings
    results["load_average_end"] = read_load_average()
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.resample:
        save(resample(read(args.resample), steps=args.steps, seed=args.seed), args.out)
        print(f"{args.steps} steps cut from {args.resample} into {args.out}")
        return 0
    raise_on_sigterm()
    command = " ".join([".venv/bin/python bench/deploy.py", *argv])
    try:
        if args.replay:
            paths = {pair.kind: data_file(args.replay, pair) for pair in PAIRS}
            results: dict[str, Any] = {"date": date.today().isoformat(), "settings": vars(args) | {
                "replay": str(args.replay)}, "analysis": replay_recordings(paths, args)}
        else:
            results = run_all(args)
    except (ChildFailed, RuntimeError, OSError) as exc:
        print(f"deploy benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    results["command"] = command
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"deploy-{results['date']}.json"
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"full results: {out}")
    print("\n" + markdown(results))
    return 0 if met(results) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
