"""Redis snapshots: an RDB file taken from the live server over its own protocol, kept with
restic, checked by starting a scratch Redis from it.

`redis-cli --rdb FILE` asks the server for a full resynchronisation, as a replica would
(Redis 7 also sends `REPLCONF rdb-only 1`, so no replication backlog is kept for it), and
writes the RDB it streams: nothing is written in the server's data directory and no BGSAVE
of the server's own is disturbed. The password reaches redis-cli through REDISCLI_AUTH.

Redis 7 streams the RDB straight to the socket (repl-diskless-sync yes) and first waits
repl-diskless-sync-delay (5 s by default) for more replicas to share the transfer: every
snapshot takes at least that long.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import (
    BackupEngineError,
    BackupOutcome,
    Progress,
    StoredCopy,
    no_progress,
    redact,
)
from opsplane.drivers.backup.copies import ResticCopies, file_sha256

if TYPE_CHECKING:
    from opsplane.drivers.sandbox.redis import TemporaryRedis

ENGINE = "redis"
RDB_NAME = "dump.rdb"
_DB_LINE = re.compile(r"^db(\d+)$")


class RedisRdbBackup:
    """Backups of the Redis server at `host`:`port` of `component`.

    `work_dir` holds the RDB file between taking it and saving it (the system's temporary
    directory when None); `timeout` bounds the transfer, in seconds."""

    def __init__(
        self,
        component: str,
        host: str,
        port: int,
        copies: ResticCopies,
        *,
        password: str | None = None,
        username: str | None = None,
        work_dir: str | Path | None = None,
        timeout: float = 600,
    ) -> None:
        self.component = component
        self.host = host
        self.port = port
        self.password = password
        self.username = username
        self.copies = copies
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.timeout = timeout

    @property
    def name(self) -> str:
        return f"Redis {self.host}:{self.port} of {self.component}"

    def facts(self) -> dict[str, Any]:
        """What the server says now: `redis_version`, `used_memory` (bytes) and `keys`, the
        number of keys per database number (as text, only databases holding keys)."""
        client = redis.Redis(host=self.host, port=self.port, username=self.username,
                             password=self.password, socket_timeout=30, decode_responses=True)
        try:
            server = client.info("server")
            memory = client.info("memory")
            keyspace = client.info("keyspace")
        except redis.RedisError as exc:
            raise BackupEngineError(f"{self.name}: INFO failed: {exc}") from None
        finally:
            client.close()
        return {"redis_version": str(server.get("redis_version", "")),
                "used_memory": int(memory.get("used_memory", 0)),
                "keys": keys_per_db(keyspace)}

    def backup(self, progress: Progress = no_progress) -> BackupOutcome:
        """Take an RDB snapshot and save it to every repository (tags: component, "redis").

        Facts: those of `facts()` just before the transfer, plus `keys_after` (the counts
        just after it: they differ when the server was written to meanwhile, and the RDB's
        lie between), `rdb_file` (its name in the snapshot) and `rdb_bytes`."""
        started = datetime.now(UTC)
        scratch = Path(tempfile.mkdtemp(prefix="opsplane-rdb-", dir=self.work_dir))
        try:
            before = self.facts()
            progress("snapshot", None)
            rdb = scratch / RDB_NAME
            self._transfer(rdb)
            after = self.facts()
            checksum = file_sha256(rdb)
            size = rdb.stat().st_size
            stored, _ = self.copies.save_paths(
                [RDB_NAME], cwd=scratch, tags=[self.component, ENGINE], progress=progress)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return BackupOutcome(
            kind="snapshot", started=started, finished=datetime.now(UTC), size_bytes=size,
            copies=stored, checksum=checksum,
            facts={**before, "keys_after": after["keys"], "rdb_file": RDB_NAME,
                   "rdb_bytes": size},
        )

    def restore_file(self, copy: StoredCopy, target_dir: str | Path) -> Path:
        """Write the copy's RDB file into `target_dir`; its path."""
        return self.copies.restore_file(copy, target_dir, RDB_NAME, what=self.name)

    @contextmanager
    def scratch_server(self, copy: StoredCopy, work_dir: str | Path) -> Iterator[TemporaryRedis]:
        """Restore the copy under `work_dir` and run a scratch Redis (sandbox TemporaryRedis,
        on a free loopback port, persisting nothing) holding its data while the context is
        open; stopped after."""
        from opsplane.drivers.sandbox.redis import TemporaryRedis

        work = Path(work_dir)
        rdb = self.restore_file(copy, work / "restored")
        with TemporaryRedis(work / "scratch", rdb_file=rdb) as scratch:
            yield scratch

    def verify(self, copy: StoredCopy, outcome: BackupOutcome, work_dir: str | Path) -> list[str]:
        """Restore the copy, start a scratch Redis from its RDB file (`scratch_server`) and
        compare keys per database with the outcome's facts, and the file's SHA-256: the
        problems found, none when the data came back whole."""
        problems = []
        with self.scratch_server(copy, work_dir) as scratch:
            checksum = file_sha256(Path(work_dir) / "restored" / RDB_NAME)
            if outcome.checksum and checksum != outcome.checksum:
                problems.append(f"the restored RDB's SHA-256 is {checksum}, the backup's was "
                                f"{outcome.checksum}")
            client = scratch.client()
            try:
                found = keys_per_db(client.info("keyspace"))
            finally:
                client.close()
        problems += compare_keys(found, outcome.facts.get("keys", {}),
                                 outcome.facts.get("keys_after", outcome.facts.get("keys", {})))
        return problems

    def _transfer(self, rdb: Path) -> None:
        env = {"REDISCLI_AUTH": self.password} if self.password is not None else {}
        argv = ["redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning"]
        if self.username is not None:
            argv += ["--user", self.username]
        done = command.run([*argv, "--rdb", str(rdb)], what=f"redis-cli --rdb from {self.name}",
                           env=env, timeout=self.timeout, check=False)
        # redis-cli reports a failed transfer in its output, not always in its exit code.
        text = done.stdout + done.stderr
        if done.returncode != 0 or "Transfer finished with success" not in text:
            detail = redact(command.tail(done), [self.password])
            raise BackupEngineError(f"redis-cli --rdb from {self.name} failed "
                                    f"(exit {done.returncode}): {detail}")
        if not rdb.is_file() or rdb.stat().st_size == 0:
            raise BackupEngineError(f"redis-cli --rdb from {self.name} wrote no RDB file")
        os.chmod(rdb, 0o600)


def keys_per_db(keyspace: Mapping[str, Any]) -> dict[str, int]:
    """Key counts per database number (as text) from INFO keyspace, as redis-py parses it
    ({"db0": {"keys": 3, ...}})."""
    counts = {}
    for name, value in keyspace.items():
        match = _DB_LINE.match(name)
        if match and isinstance(value, Mapping):
            counts[match.group(1)] = int(value.get("keys", 0))
    return dict(sorted(counts.items(), key=lambda item: int(item[0])))


def compare_keys(found: Mapping[str, int], before: Mapping[str, int],
                 after: Mapping[str, int]) -> list[str]:
    """The databases whose key count in `found` is not within those recorded before and
    after the snapshot (equal to both when the server was not written to meanwhile)."""
    problems = []
    for db in sorted(set(found) | set(before) | set(after), key=int):
        low, high = sorted((before.get(db, 0), after.get(db, 0)))
        count = found.get(db, 0)
        if not low <= count <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            problems.append(f"db{db} holds {count} keys, the backup recorded {expected}")
    return problems
