"""The backup benchmark's platform: a private PostgreSQL cluster holding a pgbench database and
archiving through pgBackRest, opsplane's policies for it from an inventory text (pgBackRest into a
local repository, pg_dump kept as sealed archives), a SQLite store, and the bare commands the baselines
run. Everything lives in one temporary directory the cluster's OS user can reach."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplane.backup.factory import open_engine
from opsplane.backup.flows import BackupRuns, RunResult
from opsplane.backup.policy import apply
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.backup.pgbackrest import PgBackRest
from opsplane.drivers.sandbox.postgres import TemporaryPostgres, find_postgres_bindir
from opsplane.store import Store

ENVIRON = {"BACKUP_KEY": "bench-backup-key-4c1f9e"}
PHYSICAL = "bench-db"
LOGICAL = "bench-dump"
DATABASE = "bench"
ROWS_PER_SCALE = 100_000  # pgbench_accounts rows per unit of scale
BYTES_PER_SCALE = 15_000_000  # what one unit of scale takes on disk, tables and indexes: ~1 GB at 70
# pgbench's server-side generation ("-I G"), with a filler that compresses like ordinary data
FILLED = (
    "INSERT INTO pgbench_branches (bid, bbalance) SELECT bid, 0 FROM generate_series(1, {scale}) bid",
    "INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT tid, (tid - 1) / 10 + 1, 0 "
    "FROM generate_series(1, {scale} * 10) tid",
    "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT aid, (aid - 1) / 100000 + 1, 0, "
    "md5(aid::text) || md5(aid::text || '-') FROM generate_series(1, {scale} * 100000) aid",
)
_LABEL = re.compile(r"new backup label = (\S+)")

Progress = Callable[[str], None]


def os_user() -> str | None:
    """The account the clusters run as: `postgres` when we are root (initdb refuses root)."""
    return "postgres" if os.geteuid() == 0 else None


def give(path: Path, mode: int = 0o700) -> Path:
    """`path` (created) owned by the cluster's account, with `mode`."""
    path.mkdir(parents=True, exist_ok=True)
    user = os_user()
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)
    return path


def as_owner(argv: Sequence[str]) -> list[str]:
    """`argv` run as the cluster's account, as opsplane's drivers run pgBackRest."""
    user = os_user()
    return list(argv) if user is None else ["runuser", "-u", user, "--", *argv]


def inventory_text(root: Path, cluster: TemporaryPostgres | None, dumps: str = "dumps") -> str:
    """The inventory of the benchmark: one database, two policies. `dumps` is the directory (under
    `root`) of the repository the pg_dump policy writes to."""
    port = cluster.port if cluster else 5432
    data_dir = cluster.data_dir if cluster else "/nonexistent"
    socket_dir = cluster.socket_dir if cluster else "/nonexistent"
    return textwrap.dedent(f"""\
        version: 1
        platform: {{name: bench}}
        runtime: {{state_dir: {root}/state}}
        databases:
          {PHYSICAL}: {{port: {port}, database: {DATABASE}}}
        backup:
          encryption_key: env:BACKUP_KEY
          repositories:
            local: {{path: {root}/repo}}
            dumps: {{path: {root}/{dumps}}}
          policies:
            {PHYSICAL}: {{data_dir: {data_dir}, socket_dir: {socket_dir}, repositories: [local]}}
            {LOGICAL}: {{engine: pg_dump, component: {PHYSICAL}, repositories: [dumps]}}
        """)


@dataclass
class Platform:
    """The cluster, the inventory and the store, set up by `start` and removed by `stop`."""

    root: Path
    progress: Progress
    cluster: TemporaryPostgres | None = None
    store: Store | None = None
    runs: BackupRuns | None = None
    scale: int = 0
    database_bytes: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    _others: list[TemporaryPostgres] = field(default_factory=list)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, scale: int, filler: str = "pgbench") -> None:
        self.root.chmod(0o755)
        archiving = self.engine(PHYSICAL, cluster=None).driver.archive_settings()
        # the rpo part sets archive_timeout with ALTER SYSTEM, which a command-line setting overrides
        archiving.pop("archive_timeout", None)
        self.cluster = TemporaryPostgres(self.root / "pg", settings={**archiving, "max_wal_size": "4GB"})
        self.cluster.start()
        self.cluster.execute(f"CREATE DATABASE {DATABASE}")
        self.store = Store.open(f"sqlite:///{self.root}/opsplane.db")
        self.runs = BackupRuns(self.store, clock=SystemClock(), holder="bench", actor="bench")
        self.engine(PHYSICAL).prepare()  # the stanza
        self.progress(f"pgbench -i -s {scale} (about {scale * BYTES_PER_SCALE / 1e9:.1f} GB)")
        started = time.monotonic()
        if filler == "pgbench":
            self.pgbench(["-i", "-s", str(scale), "-q", "--no-vacuum"])
        else:  # pgbench's tables and keys, but accounts' filler 64 hex digits: about 3:1 for zstd
            self.pgbench(["-i", "-I", "dt"])
            for statement in FILLED:
                self.cluster.execute(statement.format(scale=scale), database=DATABASE)
            self.pgbench(["-i", "-I", "p"])
        self.cluster.execute("VACUUM ANALYZE", database=DATABASE)
        self.scale = scale
        [(size,)] = self.cluster.execute("SELECT pg_database_size(%s)", (DATABASE,))
        self.database_bytes = int(size)
        self.facts["pgbench_init_seconds"] = round(time.monotonic() - started, 1)
        self.progress(f"database {DATABASE}: {self.database_bytes / 1e9:.2f} GB in "
                      f"{self.facts['pgbench_init_seconds']:.0f} s")

    def stop(self) -> None:
        if self.runs is not None:
            self.runs.close()
        if self.store is not None:
            self.store.close()
        for cluster in [*self._others, *([self.cluster] if self.cluster else [])]:
            try:
                cluster.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others all the same
                self.progress(f"stopping {cluster!r}: {exc}")

    def other_cluster(self, name: str, settings: dict[str, str] | None = None) -> TemporaryPostgres:
        """A second cluster under the root (no archiving), stopped with the platform."""
        cluster = TemporaryPostgres(self.root / name, settings=settings)
        self._others.append(cluster)
        return cluster.start()

    # --- opsplane ------------------------------------------------------------------------------

    def inventory(self, cluster: TemporaryPostgres | None, dumps: str = "dumps") -> Any:
        return loads(inventory_text(self.root, cluster, dumps))

    def engine(self, policy: str, *, cluster: Any = "running", dumps: str = "dumps") -> Any:
        """The engine of `policy` as `opsplane backup run` opens it."""
        inv = self.inventory(self.cluster if cluster == "running" else cluster, dumps)
        return open_engine(inv, apply(inv, policy), environ=ENVIRON, base_dir=self.root)

    def run(self, engine: Any, *, check_after: bool, progress: Any = None) -> RunResult:
        assert self.runs is not None
        options = {"progress": progress} if progress is not None else {}
        result = self.runs.run(engine, kind="full", trigger="bench", check_after=check_after, **options)
        if result.state != "complete":
            raise RuntimeError(f"opsplane's backup of {engine.policy.name} failed: {result.error}")
        return result

    # --- bare commands -------------------------------------------------------------------------

    def pgbench(self, args: Sequence[str], *, background: bool = False, log: Path | None = None) -> Any:
        assert self.cluster is not None
        argv = [str(find_postgres_bindir() / "pgbench"), "-h", self.cluster.host,
                "-p", str(self.cluster.port), "-U", self.cluster.user, *args, DATABASE]
        if background:
            out = open(log or os.devnull, "ab")  # noqa: SIM115 - the child's output, closed with it
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,  # noqa: S603
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return bare(argv, what="pgbench")


def pgbackrest_argv(driver: PgBackRest, *args: str) -> list[str]:
    """The argument list opsplane's driver runs for `args`: its executable, its configuration
    file and secrets directory, its stanza; run as the cluster's account."""
    return as_owner([driver.executable, f"--config={driver.config_file}",
                     f"--config-include-path={driver.include_dir}", f"--stanza={driver.stanza}", *args])


def bare(argv: Sequence[str], *, what: str, env: dict[str, str] | None = None) -> str:
    """Run a baseline command to its end; its standard output. RuntimeError when it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False,  # noqa: S603
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout


def new_label(output: str) -> str:
    found = _LABEL.findall(output)
    if not found:
        raise RuntimeError("pgbackrest backup did not say the new backup's label")
    return str(found[-1])


def tree_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
