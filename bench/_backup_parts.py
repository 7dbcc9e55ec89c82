"""The backup benchmark's parts, each measured beside its baseline in the same run, on the same data:
`physical` (pgBackRest backup and restore through opsplane against the bare commands), `logical`
(opsplane's pg_dump engine against pg_dump + zstd), `rpo` (how old the newest archived point gets
under a steady write load), `drill` (restore into a scratch cluster until it answers queries) and
`failover` (opsplane failover under writes through PgBouncer)."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from _backup_setup import (
    DATABASE,
    LOGICAL,
    PHYSICAL,
    Platform,
    bare,
    fresh_dir,
    give,
    new_label,
    pgbackrest_argv,
    tree_bytes,
)

from opsplane.backup import service
from opsplane.backup.engines import CopyRef
from opsplane.backup.flows import verify
from opsplane.clock import SystemClock
from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import StoredCopy
from opsplane.drivers.backup.pgdump import PostgresDatabase, find_pg_bindir
from opsplane.drivers.sandbox.postgres import TemporaryPostgres

Progress = Callable[[str], None]
SAMPLE = 0.25  # seconds between two readings of the WAL position and the archiver


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    value = call()
    return time.monotonic() - started, value


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [round(v, 2) for v in values]}


def ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(ours) / statistics.median(theirs)


class Phases:
    """A Progress for opsplane's flow that notes when each phase first reported: where the time of
    one backup run went."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seen: dict[str, float] = {}

    def __call__(self, phase: str, _fraction: float | None) -> None:
        self.seen.setdefault(phase, time.monotonic() - self.started)

    def split(self, total: float) -> dict[str, float]:
        """Seconds from each phase's first report to the next one's (the last to `total`)."""
        marks = sorted(self.seen.items(), key=lambda item: item[1])
        split = {"before the first phase": marks[0][1] if marks else total}
        for (name, at), (_, following) in zip(marks, [*marks[1:], ("end", total)], strict=True):
            split[name] = following - at
        return {name: round(seconds, 2) for name, seconds in split.items()}


class EngineCommands:
    """While open, the wall time of every engine command opsplane runs (they all go through
    `command.run`), by what it was: a run through opsplane measured against the very pgbackrest
    command it ran, in the same run, so that pgBackRest's own run-to-run variation cancels out."""

    def __init__(self) -> None:
        self.seconds: list[tuple[str, float]] = []
        self._run = command.run

    def __enter__(self) -> EngineCommands:
        def timed_run(argv: Any, **options: Any) -> Any:
            started = time.monotonic()
            try:
                return self._run(argv, **options)
            finally:
                self.seconds.append((str(options.get("what", "")), time.monotonic() - started))

        command.run = timed_run  # type: ignore[assignment]
        return self

    def __exit__(self, *_: object) -> None:
        command.run = self._run  # type: ignore[assignment]

    def of(self, what: str) -> float:
        """The seconds the commands named `what` took."""
        return sum(seconds for name, seconds in self.seconds if name == what)


def paired(runs: list[tuple[float, float]]) -> dict[str, Any]:
    """(opsplane's seconds, the engine command's seconds in that run) per run: the median ratio and
    the median seconds opsplane added."""
    return {"runs": [[round(ours, 3), round(engine, 3)] for ours, engine in runs],
            "ratio": statistics.median(ours / engine for ours, engine in runs),
            "added_seconds": statistics.median(ours - engine for ours, engine in runs)}


# --- 1. physical: pgBackRest through opsplane against the bare command -----------------------


def physical(platform: Platform, repeat: int, progress: Progress) -> dict[str, Any]:
    engine = platform.engine(PHYSICAL)
    driver = engine.driver
    backup_argv = pgbackrest_argv(driver, "backup", "--type=full", "--repo=1", "--log-level-console=detail")

    def keep_only(label: str) -> None:
        """Expire every backup but `label`, and with them the WAL it does not need, so that each
        measured backup starts from the same repository."""
        for found in driver.info().backups_in(1):
            if found.label != label:
                driver.expire(found.label, repo=1)

    # Warm-up, and the repository every measured run starts from: one full backup taken through
    # opsplane (catalogued, with its counts, for the drill), the WAL of the load before it expired.
    progress("warm-up: a bare backup, then one through opsplane (kept as the base)")
    first = new_label(bare(backup_argv, what="pgbackrest backup"))
    base_result = platform.run(engine, check_after=False)
    base = [b.label for b in driver.info().backups_in(1) if b.label != first][-1]
    keep_only(base)
    # "driver": PgBackRest.backup alone (the backup, then `info` and the manifest read back), to tell
    # the driver's share of opsplane's time from the flow's (stanza-create, counts, WAL switch, catalog)
    sides: dict[str, list[float]] = {"bare": [], "opsplane": [], "opsplane + check": [], "driver": []}
    splits: dict[str, list[dict[str, float]]] = {"opsplane": [], "opsplane + check": []}
    # opsplane's time against the pgbackrest backup (and verify) it ran in the same run
    pairs: dict[str, list[tuple[float, float]]] = {"opsplane": [], "opsplane + check": [], "driver": []}

    def measure(side: str) -> None:
        engine_commands = EngineCommands()
        if side == "bare":
            seconds, _ = timed(lambda: bare(backup_argv, what="pgbackrest backup"))
        elif side == "driver":
            with engine_commands:
                seconds, _ = timed(lambda: platform.engine(PHYSICAL).driver.backup("full", repo="local"))
        else:
            phases = Phases()
            with engine_commands:
                seconds, _ = timed(lambda: platform.run(platform.engine(PHYSICAL),
                                                        check_after=side != "opsplane", progress=phases))
            splits[side].append(phases.split(seconds))
        if side != "bare":
            pairs[side].append((seconds, engine_commands.of("pgBackRest full backup")
                                + engine_commands.of("pgBackRest verify")))
        sides[side].append(seconds)
        progress(f"  backup, {side}: {seconds:.1f} s")
        keep_only(base)

    order = list(sides)
    for number in range(repeat):
        for side in order[number % len(order):] + order[:number % len(order)]:  # each side first in turn
            measure(side)
    info = driver.info().backup(base, 1)
    restores: dict[str, list[float]] = {"bare": [], "opsplane": []}
    restore_pairs: list[tuple[float, float]] = []
    scratch = give(platform.root / "restores", 0o755)
    for number in range(repeat):
        for side in (("opsplane", "bare") if number % 2 == 0 else ("bare", "opsplane")):
            target = scratch / f"{side}-{number}"
            shutil.rmtree(target, ignore_errors=True)
            if side == "bare":
                give(target)
                argv = pgbackrest_argv(driver, "restore", "--repo=1", f"--pg1-path={target}", f"--set={base}",
                                       "--type=immediate", "--target-action=promote", "--archive-mode=off")
                seconds, _ = timed(lambda argv=argv: bare(argv, what="pgbackrest restore"))  # type: ignore[misc]
            else:
                with EngineCommands() as engine_commands:
                    seconds, _ = timed(lambda target=target: platform.engine(  # type: ignore[misc]
                        PHYSICAL).driver.restore(target, repo="local", label=base, immediate=True))
                restore_pairs.append((seconds, engine_commands.of("pgBackRest restore")))
            restores[side].append(seconds)
            progress(f"  restore, {side}: {seconds:.1f} s")
            shutil.rmtree(target, ignore_errors=True)
    return {
        "base_label": base, "base_backup_id": base_result.backup_id,
        "backup_bytes": info.size_bytes if info else None, "repo_bytes": info.repo_bytes if info else None,
        "backup": {side: summary(values) for side, values in sides.items()},
        "backup_ratio": ratio(sides["opsplane"], sides["bare"]),
        "backup_check_ratio": ratio(sides["opsplane + check"], sides["bare"]),
        "backup_driver_ratio": ratio(sides["driver"], sides["bare"]),
        "backup_paired": {side: paired(runs) for side, runs in pairs.items()},
        "restore_paired": paired(restore_pairs),
        "phases": {side: {name: statistics.median(s.get(name, 0.0) for s in found)
                          for name in dict.fromkeys(n for s in found for n in s)}
                   for side, found in splits.items() if found},
        "restore": {side: summary(values) for side, values in restores.items()},
        "restore_ratio": ratio(restores["opsplane"], restores["bare"]),
        "bare_backup_argv": backup_argv,
    }


# --- 2. logical: opsplane's pg_dump engine against pg_dump + zstd ---------------------------


def logical(platform: Platform, repeat: int, progress: Progress) -> dict[str, Any]:
    cluster = platform.cluster
    assert cluster is not None
    target_cluster = platform.other_cluster("pg-restore")
    [(version,)] = cluster.execute("SHOW server_version_num")
    bindir, _ = find_pg_bindir(int(version) // 10000)
    source = ["-h", cluster.host, "-p", str(cluster.port), "-U", cluster.user]
    into = ["-h", target_cluster.host, "-p", str(target_cluster.port), "-U", target_cluster.user]
    work = fresh_dir(platform.root / "logical")
    dumps: dict[str, list[float]] = {"bare": [], "opsplane": []}
    restores: dict[str, list[float]] = {"bare": [], "opsplane": []}
    sizes: dict[str, list[int]] = {"dump": [], "bare": [], "opsplane": []}
    dump_splits: list[dict[str, float]] = []

    for number in range(repeat):
        # opsplane: a repository directory of its own for each run (made beforehand, as it is after
        # the first backup of a policy); the run gets a fresh engine, as `opsplane backup run` and the
        # schedule do
        repo_dir = f"dumps-{number}"
        platform.engine(LOGICAL, dumps=repo_dir).prepare()
        engine = platform.engine(LOGICAL, dumps=repo_dir)
        bare_dir = work / f"bare-{number}"

        def ours(engine: Any = engine, repo_dir: str = repo_dir) -> None:
            phases = Phases()
            seconds, _ = timed(lambda: platform.run(engine, check_after=False, progress=phases))
            dump_splits.append(phases.split(seconds))
            dumps["opsplane"].append(seconds)
            sizes["opsplane"].append(tree_bytes(platform.root / repo_dir))
            progress(f"  dump, opsplane (pg_dump -Fd -Z0, sealed): {seconds:.1f} s")

        def theirs(bare_dir: Path = bare_dir) -> None:
            def run() -> None:
                bare([str(bindir / "pg_dump"), *source, "-d", DATABASE, "-Fd", "-j2", "-Z0",
                      "-f", str(bare_dir)], what="pg_dump")
                sizes["dump"].append(tree_bytes(bare_dir))
                bare(["zstd", "-q", "-r", "--rm", "-T2", str(bare_dir)], what="zstd")

            seconds, _ = timed(run)
            dumps["bare"].append(seconds)
            sizes["bare"].append(tree_bytes(bare_dir))
            progress(f"  dump, bare (pg_dump -Fd -Z0, zstd): {seconds:.1f} s")

        for step in ((ours, theirs) if number % 2 == 0 else (theirs, ours)):
            step()
        (snapshot,) = engine.copies.held("dumps")

        def restore_ours(number: int = number, snapshot: str = snapshot, repo_dir: str = repo_dir) -> None:
            target = PostgresDatabase(target_cluster.host, target_cluster.port, f"ours_{number}",
                                      target_cluster.user)
            engine = platform.engine(LOGICAL, dumps=repo_dir)  # a fresh one, as a restore opens it
            # the rows are counted by verification, not by a restore: not measured here
            seconds, _ = timed(lambda: engine.saver.restore(StoredCopy("dumps", snapshot), target,
                                                            work_dir=work, count=False))
            restores["opsplane"].append(seconds)
            target_cluster.execute(f"DROP DATABASE ours_{number}")
            progress(f"  restore, opsplane (unseal, pg_restore -j2): {seconds:.1f} s")

        def restore_theirs(number: int = number, bare_dir: Path = bare_dir) -> None:
            def run() -> None:
                bare(["zstd", "-d", "-q", "-r", "--rm", str(bare_dir)], what="zstd -d")
                bare([str(bindir / "createdb"), *into, f"theirs_{number}"], what="createdb")
                bare([str(bindir / "pg_restore"), *into, "-d", f"theirs_{number}", "-j2", "--no-owner",
                      "--no-privileges", "--exit-on-error", str(bare_dir)], what="pg_restore")

            seconds, _ = timed(run)
            restores["bare"].append(seconds)
            target_cluster.execute(f"DROP DATABASE theirs_{number}")
            shutil.rmtree(bare_dir, ignore_errors=True)
            progress(f"  restore, bare (zstd -d, createdb, pg_restore -j2): {seconds:.1f} s")

        for restore_step in ((restore_ours, restore_theirs) if number % 2 == 0
                             else (restore_theirs, restore_ours)):
            restore_step()
        shutil.rmtree(platform.root / repo_dir, ignore_errors=True)
    return {
        "dump": {side: summary(values) for side, values in dumps.items()},
        "dump_ratio": ratio(dumps["opsplane"], dumps["bare"]),
        "phases": {name: statistics.median(s.get(name, 0.0) for s in dump_splits)
                   for name in dict.fromkeys(n for s in dump_splits for n in s)},
        "restore": {side: summary(values) for side, values in restores.items()},
        "restore_ratio": ratio(restores["opsplane"], restores["bare"]),
        "bytes": {"dump": statistics.median(sizes["dump"]), "bare_zstd": statistics.median(sizes["bare"]),
                  "opsplane_sealed": statistics.median(sizes["opsplane"])},
    }


# --- 3. rpo: the newest archived point under a steady write load ----------------------------


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _archived_up_to(wal_file: str | None, segment_bytes: int) -> int | None:
    """The WAL position up to which everything is archived: the end of segment `wal_file`."""
    if not wal_file or len(wal_file) < 24:
        return None
    log, segment = int(wal_file[8:16], 16), int(wal_file[16:24], 16)
    return log * (1 << 32) + (segment + 1) * segment_bytes


def rpo(platform: Platform, timeouts: list[float], seconds: float, rate: float, progress: Progress
        ) -> dict[str, Any]:
    cluster = platform.cluster
    assert cluster is not None
    [(segment,)] = cluster.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
    archive = platform.root / "repo" / PHYSICAL / "archive"
    found = []
    for timeout in timeouts:
        cluster.execute(f"ALTER SYSTEM SET archive_timeout = '{timeout:g}s'")
        cluster.execute("SELECT pg_reload_conf()")
        cluster.execute("SELECT pg_switch_wal()")
        time.sleep(2)
        archived_before = tree_bytes(archive)
        progress(f"  archive_timeout {timeout:g} s: pgbench -c 2 -R {rate:g} for {seconds:g} s")
        samples: list[dict[str, Any]] = []
        load = platform.pgbench(["-c", "2", "-j", "2", "-R", f"{rate:g}", "-T", f"{seconds:g}", "-n"],
                                background=True, log=platform.root / f"pgbench-rpo-{timeout:g}.log")
        started = time.monotonic()
        with psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user=cluster.user,
                             dbname=DATABASE, autocommit=True) as connection:
            while load.poll() is None:
                row = connection.execute(
                    "SELECT pg_current_wal_insert_lsn()::text, last_archived_wal, "
                    "extract(epoch FROM now() - last_archived_time)::float8, failed_count "
                    "FROM pg_stat_archiver").fetchone()
                assert row is not None
                samples.append({"t": time.monotonic() - started, "lsn": _lsn(row[0]),
                                "archived_to": _archived_up_to(row[1], int(segment)),
                                "since_last_archive": row[2], "failed": row[3]})
                time.sleep(max(0.0, SAMPLE - (time.monotonic() - started) % SAMPLE))
        transactions = _transactions(platform.root / f"pgbench-rpo-{timeout:g}.log")
        exact = []
        for sample in samples:
            safe = [s["t"] for s in samples if s["t"] <= sample["t"] and sample["archived_to"] is not None
                    and s["lsn"] <= sample["archived_to"]]
            if safe:  # from the first moment some of the load's own WAL is archived
                exact.append((sample["t"], sample["t"] - max(safe)))
        warm = timeout + 5
        window = [age for t, age in exact if t >= warm]
        proxy = [s["since_last_archive"] for s in samples
                 if s["t"] >= warm and s["since_last_archive"] is not None]
        grown = tree_bytes(archive) - archived_before
        entry: dict[str, Any] = {
            "archive_timeout": timeout, "seconds": seconds, "rate": rate, "transactions": transactions,
            "samples": len(samples), "window_from": warm,
            "data_at_risk": _spread(window), "since_last_archive": _spread(proxy),
            "archive_failures": (samples[-1]["failed"] - samples[0]["failed"]) if samples else None,
            "archive_bytes": grown, "archive_bytes_per_hour": grown * 3600 / max(1.0, samples[-1]["t"])
            if samples else None,
            "series": [(round(t, 1), round(age, 1)) for t, age in exact],
        }
        found.append(entry)
        risk = entry["data_at_risk"]
        progress(f"  archive_timeout {timeout:g} s: data at risk median {risk['median']:.1f} s, "
                 f"max {risk['max']:.1f} s" if risk else "  no archived point in the window")
    cluster.execute("ALTER SYSTEM RESET archive_timeout")
    cluster.execute("SELECT pg_reload_conf()")
    return {"runs": found}


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def _transactions(log: Path) -> int | None:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("number of transactions actually processed:"):
            return int(line.split(":")[1].split("/")[0].strip())
    return None


# --- 4. drill: restore into a scratch cluster until it answers ---------------------------------


def drill(platform: Platform, physical_results: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """RTO of a drill of the base backup: pgBackRest restore to the moment its rows were counted,
    the cluster started and recovered until it accepts writes and answers a query. Then the same
    restore as opsplane's verification runs it (`restore_scratch`: counts every table's rows and
    runs pg_amcheck before the drill could be called done)."""
    assert platform.store is not None
    engine = platform.engine(PHYSICAL)
    backup_id = physical_results["base_backup_id"]
    label = physical_results["base_label"]
    with platform.store.session() as session:
        row = service.get(session, backup_id)
        copy = CopyRef(backup_id, "local", label, dict(row.facts), row.checksum)
    scratch = give(platform.root / "drill", 0o755)
    work = give(scratch / "rto", 0o755)
    marks: dict[str, float] = {}
    started = time.monotonic()
    restored = engine.driver.restore(work / "data", repo="local", label=label,
                                     target_lsn=copy.facts.get("counted_at_lsn"),
                                     immediate=not copy.facts.get("counted_at_lsn"))
    marks["restored"] = time.monotonic() - started
    (restored.data_dir / "pg_hba.conf").write_text("local all all trust\n")
    cluster = TemporaryPostgres.from_data_dir(restored.data_dir, work / "run",
                                              settings={"archive_mode": "off"})
    try:
        cluster.start()
        marks["started"] = time.monotonic() - started
        cluster.wait_writable(timeout=3600)
        cluster.execute("SELECT count(*) FROM pgbench_branches", database=DATABASE)
        marks["answering"] = time.monotonic() - started
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    progress(f"  drill: restored {marks['restored']:.1f} s, answering {marks['answering']:.1f} s")
    verified = verify(platform.store, engine, scratch=scratch, clock=SystemClock(), actor="bench",
                      backup_id=backup_id, repository="local")
    progress(f"  verification (restore_scratch, counts, pg_amcheck): {verified.seconds:.1f} s, "
             f"ok={verified.ok}")
    return {"marks": {k: round(v, 2) for k, v in marks.items()}, "rto_seconds": marks["answering"],
            "rto_goal": engine.policy.rto, "recovery_target": restored.recovery,
            "verification_seconds": verified.seconds, "verification_ok": verified.ok,
            "verification_problems": list(verified.problems)[:5]}


# --- 5. failover ---------------------------------------------------------------------------


def failover(platform: Platform, progress: Progress, repeat: int = 3) -> dict[str, Any]:
    """`opsplane failover` under a stream of writes through PgBouncer, `repeat` times, each on a
    pair of its own (bench/_backup_failover.py)."""
    import _backup_failover

    return _backup_failover.measure(repeat, progress)
