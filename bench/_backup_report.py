"""The backup benchmark's goals, its table and the Markdown section for docs/benchmarks.md."""

from __future__ import annotations

import statistics
from typing import Any

from _common import machine

PHYSICAL_RATIO = 1.05  # opsplane's pgBackRest backup and restore: at most 5 % more wall time than bare
LOGICAL_RATIO = 1.15  # opsplane's pg_dump engine against pg_dump + zstd
RPO_SECONDS = 60.0
FAILOVER_SECONDS = 15.0


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def _mb(size: float | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:,.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def _median(entry: dict[str, Any]) -> str:
    runs = entry["runs"]
    return f"{_s(entry['median'])} ({', '.join(f'{r:.1f}' for r in runs)})"


def goal_rows(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(goal, met or None when not measured, figures) for every goal."""
    rows: list[tuple[str, bool | None, str]] = []
    phys = results.get("physical")
    if phys and "backup_paired" in phys:
        measured = (("backup", phys["backup_paired"]["opsplane"]), ("restore", phys["restore_paired"]))
        for what, pair in measured:
            rows.append((f"pgBackRest {what} through opsplane <= {PHYSICAL_RATIO:.2f}x the pgbackrest {what} "
                         "it ran (same run, medians)", pair["ratio"] <= PHYSICAL_RATIO,
                         _near(pair["ratio"], PHYSICAL_RATIO) + f"{pair['ratio']:.2f}x, "
                         f"{pair['added_seconds']:.2f} s added; beside separate bare runs: "
                         f"{phys[what + '_ratio']:.2f}x"))
    elif phys:  # a run saved before the paired figures existed
        for what, key in (("backup", "backup_ratio"), ("restore", "restore_ratio")):
            ours, bare = phys[what]["opsplane"]["median"], phys[what]["bare"]["median"]
            rows.append((f"pgBackRest {what} through opsplane <= {PHYSICAL_RATIO:.2f}x bare (medians)",
                         phys[key] <= PHYSICAL_RATIO,
                         _near(phys[key], PHYSICAL_RATIO) + f"{phys[key]:.2f}x ({_s(ours)} vs {_s(bare)})"))
    logi = results.get("logical")
    if logi:
        for what, key in (("dump", "dump_ratio"), ("restore", "restore_ratio")):
            ours, bare = logi[what]["opsplane"]["median"], logi[what]["bare"]["median"]
            rows.append((f"pg_dump engine {what} <= {LOGICAL_RATIO:.2f}x pg_dump/pg_restore + zstd (medians)",
                         logi[key] <= LOGICAL_RATIO,
                         _near(logi[key], LOGICAL_RATIO) + f"{logi[key]:.2f}x ({_s(ours)} vs {_s(bare)})"))
    for run in (results.get("rpo") or {}).get("runs", []):
        risk = run["data_at_risk"]
        rows.append((f"RPO <= {RPO_SECONDS:g} s under write load, "
                     f"archive_timeout {run['archive_timeout']:g} s",
                     None if risk is None else risk["max"] <= RPO_SECONDS,
                     "no archived point" if risk is None else _near(risk["max"], RPO_SECONDS) +
                     f"max {_s(risk['max'])}, p95 {_s(risk['p95'])}, median {_s(risk['median'])}"))
    dr = results.get("drill")
    if dr:
        verified = "passed" if dr["verification_ok"] else "FAILED"
        rows.append((f"drill RTO <= the policy's RTO ({_s(dr['rto_goal'])})",
                     dr["rto_seconds"] <= dr["rto_goal"],
                     f"{_s(dr['rto_seconds'])} to a restored cluster answering queries; verification "
                     f"{verified} in {_s(dr['verification_seconds'])}"))
    fo = results.get("failover")
    if fo and fo.get("measured"):
        rows.append((f"failover < {FAILOVER_SECONDS:g} s, nothing lost", fo["met"],
                     f"median {_s(fo['median_seconds'])}, max {_s(fo['max_seconds'])} over "
                     f"{len(fo['runs'])} runs; longest gap between two writes "
                     f"{_s(fo['longest_write_gap_seconds'])}, "
                     f"{fo['failed_inserts']} writes failed, {fo['lost']} lost"))
    elif fo:
        rows.append((f"failover < {FAILOVER_SECONDS:g} s", None, fo["note"]))
    return rows


def _paired_lines(phys: dict[str, Any]) -> list[str]:
    """The paragraph on opsplane against the very commands it ran, when the run measured it."""
    pairs = phys.get("backup_paired")
    if not pairs:
        return []
    bare = phys["backup"]["bare"]
    spread = f"{bare['min']:.1f} to {bare['max']:.1f} s"
    sides = "; ".join(f"{side}: {pair['ratio']:.3f}x, {pair['added_seconds']:.2f} s added"
                      for side, pair in pairs.items())
    restore = phys["restore_paired"]
    return [
        "The same backup took pgBackRest itself from " + spread + " in the bare runs, so medians of "
        "separate runs move by more than the 5 % they are compared against. Each run through opsplane "
        "was therefore also timed against the pgbackrest command it ran, in that run (around "
        "`command.run`, which every engine command goes through; with the check, against the backup "
        "and `verify` commands together). Medians of the per-run ratios and of the seconds opsplane "
        f"added: {sides}; restore: {restore['ratio']:.3f}x, {restore['added_seconds']:.2f} s added.", "",
    ]


def _near(value: float, goal: float) -> str:
    """A prefix for figures within 10 % of their goal: differences of that size are noise here."""
    return "borderline: " if abs(value / goal - 1) < 0.10 else ""


def met(results: dict[str, Any]) -> bool:
    return all(ok is not False for _, ok, _ in goal_rows(results))


def _mark(ok: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[ok]


def table(results: dict[str, Any]) -> str:
    """Plain text for the terminal: the goals, then the figures behind them."""
    lines = [f"Backups of a {results['database_bytes'] / 1e9:.2f} GB pgbench database "
             f"(scale {results['scale']})", ""]
    for goal, ok, figures in goal_rows(results):
        lines.append(f"[{_mark(ok):>12}] {goal}: {figures}")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    box = machine()
    loads = results.get("load_average") or []
    load = (f"1-minute load average {min(loads):.2f} to {max(loads):.2f} during the run (median "
            f"{statistics.median(loads):.2f})") if loads else "load average not read"
    versions = results.get("versions", {})
    lines = [
        "## Backups", "",
        f"Measured on {results['date']}: {box.cpus} CPU ({box.cpu_model}), {box.memory_gib:.0f} GiB, "
        f"Linux {box.kernel}, Python {box.python}, PostgreSQL {versions.get('postgresql', '?')}, "
        f"pgBackRest {versions.get('pgbackrest', '?')}, restic {versions.get('restic', '?')}, "
        f"zstd {versions.get('zstd', '?')}; {load}. A pgbench database of "
        f"{results['database_bytes'] / 1e9:.2f} GB (scale {results['scale']}, "
        f"{'filler 64 hex digits a row' if results['settings'].get('filler') == 'md5' else 'pgbench -i'})"
        " in a private cluster "
        "archiving through pgBackRest (the sandbox's fsync=off, full_page_writes=off), everything on "
        "one local disk.", "",
        "```", results.get("command", ""), "```", "",
    ]
    phys = results.get("physical")
    if phys:
        lines += [
            "### pgBackRest: opsplane against the bare command", "",
            "Full backups into a local, encrypted (aes-256-cbc), zstd-compressed repository with the "
            "configuration opsplane renders (process-max 2). Bare: `pgbackrest backup --type=full` with "
            "opsplane's argv, as the cluster's account. opsplane: `BackupRuns.run` with the policy's engine "
            "(prepare, backup, `info` and the manifest's SHA-256 at once, the rows counted from the moment "
            "pg_backup_stop is called and a WAL switch archived, the catalog), without and with the "
            "repository check after it (`pgbackrest verify`). Each run "
            "starts from the same repository (one full backup; the measured one is expired after it); "
            "the sides take turns going first. Restore: the same backup into a new directory, "
            "`PgBackRest.restore` against `pgbackrest restore` with the same options. Medians, every run "
            "in brackets (seconds).", "",
            "| | Bare | opsplane | Ratio | opsplane + check | Ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| Backup | {_median(phys['backup']['bare'])} | {_median(phys['backup']['opsplane'])} "
            f"| {phys['backup_ratio']:.2f}x | {_median(phys['backup']['opsplane + check'])} "
            f"| {phys['backup_check_ratio']:.2f}x |",
            f"| Restore | {_median(phys['restore']['bare'])} | {_median(phys['restore']['opsplane'])} "
            f"| {phys['restore_ratio']:.2f}x | | |",
            "",
            "The driver alone (`PgBackRest.backup`: the same backup, then `info` and the manifest read "
            f"back for the catalog): {_median(phys['backup']['driver'])}, "
            f"{phys['backup_driver_ratio']:.2f}x bare.", "",
            *_paired_lines(phys),
            f"The backup: {_mb(phys['backup_bytes'])} of data, {_mb(phys['repo_bytes'])} in the repository. "
            "Where opsplane's run went (medians, from the first report of each phase to the next): "
            + "; ".join(f"{side}: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in split.items())
                        for side, split in phys["phases"].items()) + ".", "",
        ]
    logi = results.get("logical")
    if logi:
        size = logi["bytes"]
        lines += [
            "### pg_dump: opsplane's engine against pg_dump + zstd", "",
            "opsplane: `BackupRuns.run` of a `pg_dump` policy: `pg_dump -Fd -j2 -Z0` from an exported "
            "snapshot while the same transaction counts every table's rows, then the dump sealed into a "
            "local repository (new for each run) in one pass: zstd level 3 per 4 MiB chunk, AES-256-GCM, "
            "a SHA-256 of every stored object, the manifest, the catalog. Bare: "
            "`pg_dump -Fd -j2 -Z0`, then `zstd -r --rm -T2` over the dump's files. Restore into a second "
            "cluster (no archiving): `PgDumpBackup.restore` (every object's SHA-256 and every chunk's tag "
            "checked, decrypted, decompressed, `pg_restore -j2`; the rows are counted by verification, "
            "not here) against "
            "`zstd -d -r`, `createdb`, `pg_restore -j2`. The sides take turns going first.", "",
            "| | Bare | opsplane | Ratio |", "| --- | ---: | ---: | ---: |",
            f"| Dump | {_median(logi['dump']['bare'])} | {_median(logi['dump']['opsplane'])} "
            f"| {logi['dump_ratio']:.2f}x |",
            f"| Restore | {_median(logi['restore']['bare'])} | {_median(logi['restore']['opsplane'])} "
            f"| {logi['restore_ratio']:.2f}x |",
            f"| Stored | {_mb(size['bare_zstd'])} | {_mb(size['opsplane_sealed'])} | |",
            "",
            "Where opsplane's dump went (medians): "
            + ", ".join(f"{name} {secs:.1f} s" for name, secs in logi["phases"].items())
            + " (\"dump\" is pg_dump and the row counts; \"backup\" the sealing). "
            f"The dump is {_mb(size['dump'])} uncompressed.", "",
        ]
    rp = results.get("rpo")
    if rp:
        lines += [
            "### RPO under write load", "",
            "pgbench (`-c 2 -R RATE -T SECONDS`, TPC-B-like) writing while the cluster archives through "
            "pgBackRest's `archive-push` (synchronous, one segment at a time), with `archive_timeout` set. "
            "Every 0.25 s the benchmark reads the WAL insert position and `pg_stat_archiver`. Data at risk "
            "at a moment t: t minus the newest sampled moment whose insert position lies inside an "
            "archived segment, i.e. how much of the last commits a restore from the archive would lose "
            "(0.25 s resolution, so up to 0.25 s pessimistic). Figures from one archive_timeout plus 5 s "
            "after the load started.", "",
            "| archive_timeout | Load | Data at risk: median / p95 / max | Since last archive: median / max "
            "| Archive growth |", "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for run in rp["runs"]:
            risk, since = run["data_at_risk"], run["since_last_archive"]
            shown = "-" if risk is None else f"{_s(risk['median'])} / {_s(risk['p95'])} / {_s(risk['max'])}"
            proxy = "-" if since is None else f"{_s(since['median'])} / {_s(since['max'])}"
            growth = _mb(run["archive_bytes_per_hour"])
            lines.append(f"| {run['archive_timeout']:g} s | {run['transactions'] or 0:,} transactions in "
                         f"{run['seconds']:g} s | {shown} | {proxy} | {growth}/h |")
        lines += ["", ONE_SECOND, ""]
    dr = results.get("drill")
    if dr:
        marks = dr["marks"]
        lines += [
            "### Drill", "",
            f"The base backup restored into a scratch directory to the moment its rows were counted "
            f"(recovery target {dr['recovery_target']}), the cluster started and recovered: "
            f"restored after {_s(marks['restored'])}, started after {_s(marks['started'])}, accepting "
            f"writes and answering a query after {_s(marks['answering'])} (the policy's RTO: "
            f"{_s(dr['rto_goal'])}). opsplane's verification of the same backup (`restore_scratch`: the "
            f"same restore, every table's rows counted and compared, `pg_amcheck --heapallindexed`) took "
            f"{_s(dr['verification_seconds'])} and {'passed' if dr['verification_ok'] else 'FAILED'}.", "",
        ]
    lines += ["### Goals", "", "| Goal | Result | Figures |", "| --- | --- | --- |"]
    lines += [f"| {goal} | {_mark(ok)} | {figures} |" for goal, ok, figures in goal_rows(results)]
    return "\n".join(lines)


ONE_SECOND = (
    "What would reach an RPO of about 1 s: not `archive_timeout`. Every switch closes a 16 MB segment and "
    "starts an `archive-push` (the unused rest of a switched segment compressed to almost nothing here, "
    "so the repository grew by about the WAL written, as the table shows), but at 1 s that is 3,600 "
    "processes and files an hour, each push must finish within its second, and PostgreSQL's manual "
    "warns against very short timeouts. pgBackRest's asynchronous archiving (`archive-async=y` with a "
    "spool path, `process-max` for archive-push, `archive-push-queue-max` as the safety valve) only "
    "makes pushing faster and parallel; segments still close at `archive_timeout` or when full. A "
    "second of RPO needs WAL streamed as it is written: `pg_receivewal` into the repository host "
    "(with `--synchronous` and the server's `synchronous_standby_names` naming it, a commit returns "
    "only once its WAL is on that host: RPO 0 at the price of a network round trip per commit), or a "
    "streaming standby (asynchronous: typically well under 1 s behind; synchronous: RPO 0).")
