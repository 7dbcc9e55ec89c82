"""Backups of a 1 GB PostgreSQL database through opsplane, each beside the bare tool in the same run.

    .venv/bin/python bench/backup.py                     # everything at 1 GB, 5 runs a side: about 10 minutes
    .venv/bin/python bench/backup.py --size-gb 0.1 --repeat 1 --rpo-seconds 40 --no-save   # a trial run
    .venv/bin/python bench/backup.py --parts backup,logical --repeat 5
    .venv/bin/python bench/backup.py --report bench/results/backup-DATE.json     # a saved run's section again

A private PostgreSQL cluster (TemporaryPostgres, on loopback, a free port) holds a pgbench database
of `--size-gb` and archives its WAL through pgBackRest with the settings opsplane's policy gives
it; the policies come from an inventory text, as `opsplane backup run` reads them.

1. **backup**: a full pgBackRest backup through opsplane's flow (`BackupRuns.run`, the policy's
   engine, one local repository), without and with the repository check after it, against
   `pgbackrest backup --type=full` with the configuration and argv opsplane uses, as the cluster's
   account; then the restore of one backup into a new directory, opsplane's driver against bare
   `pgbackrest restore`. Goal: opsplane at most 5 % more wall time (medians).
2. **logical**: opsplane's pg_dump engine (`pg_dump -Fd -j2 -Z0`, then restic: compressed,
   encrypted, the dump's SHA-256 manifest) against `pg_dump -Fd -j2 -Z0` + `zstd`; restore with
   `pg_restore -j2` both ways. Goal: at most 1.15x (medians); sizes stored.
3. **rpo**: how much of the newest writes a restore from the archive would lose, read every 0.25 s
   under pgbench's steady write load, with each `--archive-timeouts`. Goal: at most 60 s.
4. **drill**: restore the base backup into a scratch cluster until it accepts writes and answers
   a query (RTO), then opsplane's verification of it (`restore_scratch`).
5. **failover**: `opsplane failover` with PgBouncer under a stream of writes, three times, each on a
   new primary, replica and PgBouncer. Goal: under 15 s, no committed write lost.

Exit status 0 when every measured goal is met, 2 when one is not, 1 when the benchmark failed.
Results go to `bench/results/backup-DATE.json` (`--no-save` skips it); the Markdown section for
docs/benchmarks.md is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _backup_parts as parts  # noqa: E402
from _backup_report import markdown, met, table  # noqa: E402
from _backup_setup import BYTES_PER_SCALE, Platform  # noqa: E402
from _common import program_version, raise_on_sigterm  # noqa: E402
from _deploy_load import LoadAverage, read_load_average  # noqa: E402

from opsplane.drivers.sandbox.postgres import find_postgres_bindir  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTS = ("backup", "logical", "rpo", "drill", "failover")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of the pgbench database (default 1)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side, alternating order")
    parser.add_argument("--archive-timeouts", default="30,10", help="archive_timeout values, seconds")
    parser.add_argument("--rpo-seconds", type=float, default=150.0, help="how long each write load runs")
    parser.add_argument("--rate", type=float, default=50.0, help="pgbench transactions a second during rpo")
    parser.add_argument("--filler", choices=("pgbench", "md5"), default="pgbench",
                        help="pgbench_accounts.filler: pgbench's blanks (about 20:1 for zstd) or 64 hex "
                        "digits per row (about 3:1)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--report", type=Path, metavar="FILE", help="print a saved run's table and section")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.archive_timeouts = [float(t) for t in args.archive_timeouts.split(",") if t.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or args.repeat < 1 or args.size_gb <= 0:
        parser.error(f"--parts takes {', '.join(PARTS)}; --repeat at least 1; --size-gb above 0")
    if "drill" in args.parts and "backup" not in args.parts:
        parser.error("the drill restores the backup part's base backup: add backup to --parts")
    return args


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    bindir = find_postgres_bindir()
    return {"postgresql": program_version([str(bindir / "postgres"), "--version"], r"(\d+\.\d+)"),
            "pgbackrest": program_version(["pgbackrest", "version"], r"pgBackRest (\S+)"),
            "restic": program_version(["restic", "version"], r"restic (\S+)"),
            "zstd": program_version(["zstd", "--version"], r"v(\d+\.\d+\.\d+)")}


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    settings = {k: v for k, v in vars(args).items()}
    results: dict[str, Any] = {"date": date.today().isoformat(), "measured_at": datetime.now(UTC).isoformat(),
                               "settings": settings, "versions": versions(),
                               "load_average_start": read_load_average()}
    scale = max(1, round(args.size_gb * 1e9 / BYTES_PER_SCALE))
    root = Path(tempfile.mkdtemp(prefix="opsplane-bench-backup-", dir="/tmp"))
    platform = Platform(root, progress)
    try:
        with LoadAverage(15) as load:
            platform.start(scale, args.filler)
            results.update(scale=platform.scale, database_bytes=platform.database_bytes, **platform.facts)
            if "backup" in args.parts:
                progress("part backup: pgBackRest through opsplane and bare")
                results["physical"] = parts.physical(platform, args.repeat, progress)
            if "logical" in args.parts:
                progress("part logical: the pg_dump engine and pg_dump + zstd")
                results["logical"] = parts.logical(platform, args.repeat, progress)
            if "drill" in args.parts:
                progress("part drill: restore until the copy answers")
                results["drill"] = parts.drill(platform, results["physical"], progress)
            if "rpo" in args.parts:
                progress("part rpo: the newest archived point under write load")
                results["rpo"] = parts.rpo(platform, args.archive_timeouts, args.rpo_seconds, args.rate,
                                           progress)
            if "failover" in args.parts:
                results["failover"] = parts.failover(platform, progress)
        results["load_average"] = load.readings
        results["load_average_end"] = read_load_average()
    finally:
        platform.stop()
        shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        print(table(saved) + "\n\n" + markdown(saved))
        return 0 if met(saved) else 2
    raise_on_sigterm()
    started = time.monotonic()
    try:
        results = run_all(args)
    except Exception as exc:  # noqa: BLE001 - a command, a server or opsplane failed: say which
        print(f"backup benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every server the benchmark started has been stopped", file=sys.stderr)
        return 130
    results["command"] = " ".join([".venv/bin/python bench/backup.py", *argv])
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(table(results))
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        suffix = "" if args.filler == "pgbench" else f"-{args.filler}"
        out = RESULTS / f"backup-{results['date']}{suffix}.json"
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"full results: {out}")
    print("\n" + markdown(results))
    return 0 if met(results) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
