"""restic: encrypted, deduplicated, compressed snapshots in a directory or an S3 bucket.

`Restic` drives one repository described by a `Repository` value. The repository's key goes
to restic through its environment (RESTIC_PASSWORD), the bucket's keys likewise; neither is
ever on a command line, in a log line or in an error. Repositories are created in format 2
so that `--compression auto` applies (restic 0.14 and later).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import BackupEngineError, Progress, Repository, no_progress, redact

log = logging.getLogger("opsplane.backup")

_LOCKED = "repository is already locked"
_WRONG_PASSWORD = "wrong password or no key found"
_NO_REPOSITORY = ("Is there a repository at the following location?", "does not exist",
                  "The specified key does not exist", "NoSuchKey")
_SKIPPED = "does not exist, skipping"
_CHECK_FAILED = "Fatal: repository contains errors"
# restic 0.14's `check` says this about leftovers of an interrupted backup on standard output;
# `prune` removes them and nothing is lost, so it is not a problem of the copies.
_CHECK_HINTS = ("additional files were found in the repo", "you can run `restic prune`")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot in a repository, as `restic snapshots` lists it."""

    id: str  # the full 64-hex id; `short_id` is its first 8 characters
    short_id: str
    time: datetime
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    hostname: str


@dataclass(frozen=True)
class SavedSnapshot:
    """What one `backup` stored.

    `size_bytes` and `file_count` are the data read (restic's summary); `added_bytes` the new
    data it added, before compression (restic 0.14's summary says no more); `stored_bytes`
    is not read back (None): that would cost a command of its own."""

    snapshot_id: str
    size_bytes: int
    stored_bytes: int | None
    file_count: int
    added_bytes: int


@dataclass(frozen=True)
class RepositoryStats:
    """`restic stats`: the size counted in `mode` over `snapshot_count` snapshots."""

    mode: str
    total_size: int
    file_count: int
    blob_count: int
    snapshot_count: int


class Restic:
    """restic commands on one repository.

    `host` is the host name recorded in new snapshots (restic's own, the machine's, when
    None); `cache_dir` restic's local cache (its default under HOME when None); `timeout`
    bounds every command, in seconds; `user` runs restic as that account (we must be root).
    """

    def __init__(
        self,
        repository: Repository,
        *,
        host: str | None = None,
        cache_dir: str | None = None,
        timeout: float | None = 3600,
        user: str | None = None,
    ) -> None:
        self.repository = repository
        self.host = host
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.user = user
        self.stale_locks_removed = 0  # how many times a command met a stale lock and unlocked

    # --- where it is -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.repository.name

    @property
    def location(self) -> str:
        """restic's name for the repository: a directory or `s3:https://HOST:PORT/BUCKET/PATH`."""
        s3 = self.repository.s3
        if s3 is None:
            return self.repository.path
        inner = self.repository.path.strip("/")
        return f"s3:{s3.url}/{s3.bucket}" + (f"/{inner}" if inner else "")

    # --- the repository ----------------------------------------------------------------------

    def init(self) -> bool:
        """Create the repository (format 2, compressed) unless it exists already.

        True when it was created, False when it was there and opens with our key; a
        repository there that our key does not open is a BackupEngineError."""
        done = self._run(["cat", "config"], what="open", check=False)
        if done.returncode == 0:
            return False
        if _WRONG_PASSWORD in done.stderr:
            raise self._error("open", f"the repository exists but its key is not the one "
                              f"configured ({_WRONG_PASSWORD})")
        if not any(marker in done.stderr for marker in _NO_REPOSITORY):
            raise self._error("open", command.tail(done))
        self._run(["init", "--repository-version", "2"], what="init")
        log.info("restic repository %s created at %s", self.name, self.location)
        return True

    def unlock(self) -> None:
        """Remove stale locks: those of restic processes that no longer run on this host, or
        older than 30 minutes. A lock of a running restic stays."""
        self._run(["unlock"], what="unlock", retry_locked=False)

    # --- backing up --------------------------------------------------------------------------

    def backup_paths(
        self,
        paths: Sequence[str | Path],
        *,
        tags: Iterable[str] = (),
        progress: Progress = no_progress,
        cwd: str | Path | None = None,
    ) -> SavedSnapshot:
        """Back up files and directories into a new snapshot.

        Relative `paths` are read from `cwd`; backing up "." from a directory stores its
        contents at the snapshot's root, so a restore recreates them under the target.
        `progress` gets ("backup", fraction) as restic reads."""
        if not paths:
            raise BackupEngineError(f"restic backup to repository {self.name!r}: no paths given")
        # restic 0.14 skips a path that does not exist with a warning and exit code 0.
        base = Path(cwd) if cwd is not None else Path.cwd()
        missing = [str(path) for path in paths if not (base / path).exists()]
        if missing:
            raise self._error("backup", f"these paths do not exist: {', '.join(missing)}")
        argv = ["backup", "--json", *self._tag_args(tags), *self._host_args(), "--",
                *map(str, paths)]
        return self._backup(argv, progress=progress, cwd=cwd)

    def backup_stdin(
        self,
        source: IO[bytes] | Sequence[str],
        filename: str,
        *,
        tags: Iterable[str] = (),
        producer_env: dict[str, str] | None = None,
        progress: Progress = no_progress,
    ) -> SavedSnapshot:
        """Back up a stream as one file `filename` in a new snapshot.

        `source` is an open binary file, or the argument list of a program whose standard
        output is the data (run with `producer_env` added to a minimal environment); that
        program failing fails the backup and no snapshot is kept."""
        argv = ["backup", "--json", "--stdin", "--stdin-filename", filename,
                *self._tag_args(tags), *self._host_args()]
        if not isinstance(source, Sequence):
            return self._backup(argv, progress=progress, stdin=source.fileno())
        producer = _Producer(list(source), producer_env or {})
        try:
            saved = self._backup(argv, progress=progress, stdin=producer.stdout_fd())
        except BaseException:
            producer.stop()
            raise
        failure = producer.finish(self.timeout)
        if failure is not None:
            self.forget([saved.snapshot_id])
            raise self._error("backup from stdin", f"{source[0]} failed, the snapshot was "
                              f"removed: {failure}")
        return saved

    # --- reading -------------------------------------------------------------------------------

    def snapshots(self, tags: Iterable[str] | None = None) -> list[Snapshot]:
        """The snapshots, oldest first; with `tags`, only those carrying every one of them."""
        argv = ["snapshots", "--json", *(self._tag_args(tags) if tags else [])]
        return [_snapshot(item) for item in self._json(argv, what="list snapshots") or []]

    def snapshot(self, snapshot_id: str) -> Snapshot:
        """The snapshot `snapshot_id` (full or short id, or "latest")."""
        found = self._json(["snapshots", "--json", snapshot_id], what=f"find snapshot {snapshot_id}")
        if not found:
            raise self._error("find snapshot", f"there is no snapshot {snapshot_id}")
        return _snapshot(found[-1])

    def restore(
        self, snapshot_id: str, target_dir: str | Path, include: Sequence[str] | None = None
    ) -> None:
        """Write the snapshot's files under `target_dir` (absolute paths it saved become
        paths under it); with `include`, only what matches those patterns."""
        argv = ["restore", snapshot_id, "--target", str(target_dir)]
        for pattern in include or ():
            argv += ["--include", pattern]
        self._run(argv, what=f"restore {snapshot_id}")

    def stats(
        self,
        snapshot_id: str | None = None,
        mode: Literal["restore-size", "raw-data", "files-by-contents"] = "raw-data",
    ) -> RepositoryStats:
        """`restic stats` of one snapshot, or of the whole repository when None. In
        "raw-data" mode the size is that of the stored, compressed blobs."""
        argv = ["stats", "--json", "--mode", mode, *([snapshot_id] if snapshot_id else [])]
        found = self._json(argv, what="stats")
        return RepositoryStats(mode, int(found.get("total_size", 0)),
                               int(found.get("total_file_count", 0)),
                               int(found.get("total_blob_count", 0)),
                               int(found.get("snapshots_count", 0)))

    def check(self, read_data: bool = False) -> list[str]:
        """Verify the repository's structure, and with `read_data` every byte of every pack.

        The problems restic found, one line each; an empty list means the repository is
        sound. A check that could not run at all is a BackupEngineError."""
        argv = ["check", *(["--read-data"] if read_data else [])]
        done = self._run(argv, what="check", check=False)
        if done.returncode == 0:
            return []
        if _CHECK_FAILED not in done.stderr:
            raise self._error("check", command.tail(done))
        problems = [line.strip() for line in done.stderr.splitlines()
                    if line.strip() and not line.startswith("Fatal:")
                    and not any(hint in line for hint in _CHECK_HINTS)]
        return problems or [_CHECK_FAILED]

    # --- removing ------------------------------------------------------------------------------

    def forget(self, snapshot_ids: Sequence[str]) -> None:
        """Remove these snapshots from the list; their data stays until `prune`."""
        if snapshot_ids:
            self._run(["forget", *snapshot_ids], what="forget")

    def prune(self) -> None:
        """Delete data no snapshot uses any more, and leftovers of interrupted backups."""
        self._run(["prune"], what="prune")

    # --- internals -----------------------------------------------------------------------------

    def _backup(
        self, argv: list[str], *, progress: Progress, cwd: str | Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> SavedSnapshot:
        summary: dict[str, Any] = {}

        def on_line(line: str) -> None:
            try:
                message = json.loads(line)
            except ValueError:
                return
            if not isinstance(message, dict):
                return
            if message.get("message_type") == "status":
                done = message.get("percent_done")
                progress("backup", float(done) if isinstance(done, int | float) else None)
            elif message.get("message_type") == "summary":
                summary.update(message)

        progress("backup", 0.0)
        done = self._run(argv, what="backup", on_line=on_line, cwd=cwd, stdin=stdin,
                         check=False)
        if (done.returncode == 3 or _SKIPPED in done.stderr) and "snapshot_id" in summary:
            # restic's exit 3: a snapshot was made, but without the files it could not read
            # (0.14 still exits 0 when a path named to it vanished before it began).
            self.forget([str(summary["snapshot_id"])])
            raise self._error("backup", "some files could not be read, so the snapshot would "
                              f"be incomplete and was removed: {command.tail(done)}")
        if done.returncode != 0:
            raise self._error("backup", f"exit {done.returncode}: {self._detail(done)}")
        if "snapshot_id" not in summary:
            raise self._error("backup", "restic ended without naming the snapshot it made")
        # restic 0.14 names the snapshot by its short id in the summary; restic takes it wherever
        # it takes an id. Looking the full id and the stored size up would cost two more
        # commands, each opening the repository (its key derivation alone takes most of a second).
        progress("backup", 1.0)
        return SavedSnapshot(
            snapshot_id=str(summary["snapshot_id"]),
            size_bytes=int(summary.get("total_bytes_processed", 0)),
            stored_bytes=None,
            file_count=int(summary.get("total_files_processed", 0)),
            added_bytes=int(summary.get("data_added", 0)),
        )

    def _json(self, argv: list[str], *, what: str) -> Any:
        done = self._run(argv, what=what)
        text = done.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text.splitlines()[-1])
        except ValueError:
            raise self._error(what, f"restic answered something that is not JSON: "
                              f"{text[-200:]}") from None

    def _run(
        self, argv: list[str], *, what: str, check: bool = True, retry_locked: bool = True,
        **options: Any,
    ) -> command.Finished:
        full = self._argv(argv)
        label = f"restic {what} on repository {self.name!r}"
        done = command.run(full, what=label, env=self._env(), user=self.user,
                           timeout=self.timeout, check=False, **options)
        if done.returncode != 0 and retry_locked and _LOCKED in done.stderr:
            # A restic that was killed leaves its lock behind; `unlock` removes only locks
            # whose process is gone, so a lock of a running restic still stops us below.
            log.warning("restic repository %s: a lock blocks %s; removing stale locks and "
                        "trying again", self.name, what)
            self.unlock()
            self.stale_locks_removed += 1
            done = command.run(full, what=label, env=self._env(), user=self.user,
                               timeout=self.timeout, check=False, **options)
        if check and done.returncode != 0:
            raise self._error(what, f"exit {done.returncode}: {self._detail(done)}")
        return done

    def _detail(self, done: command.Finished) -> str:
        if _WRONG_PASSWORD in done.stderr:
            return f"the repository's key is not the one configured ({_WRONG_PASSWORD})"
        return command.tail(done)

    def _argv(self, argv: list[str]) -> list[str]:
        full = ["restic", "--repo", self.location, "--compression", "auto"]
        if self.cache_dir is not None:
            full += ["--cache-dir", self.cache_dir]
        s3 = self.repository.s3
        if s3 is not None:
            if s3.ca_file:
                full += ["--cacert", s3.ca_file]
            if not s3.verify_tls:
                full.append("--insecure-tls")
            full += ["-o", f"s3.bucket-lookup={'dns' if s3.uri_style == 'host' else 'path'}",
                     "-o", f"s3.region={s3.region}"]
        return full + argv

    def _env(self) -> dict[str, str]:
        env = {"RESTIC_PASSWORD": self.repository.cipher_pass}
        s3 = self.repository.s3
        if s3 is not None:
            env.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
                       AWS_DEFAULT_REGION=s3.region)
        return env

    def _host_args(self) -> list[str]:
        return ["--host", self.host] if self.host else []

    def _tag_args(self, tags: Iterable[str]) -> list[str]:
        listed = list(tags)
        bad = [tag for tag in listed if not tag or "," in tag]
        if bad:
            raise BackupEngineError(f"restic tags must be non-empty and without commas: {bad}")
        return ["--tag", ",".join(listed)] if listed else []

    def _error(self, what: str, detail: str) -> BackupEngineError:
        message = f"restic {what} on repository {self.name!r} failed: {detail}"
        return BackupEngineError(self._redact(message))

    def _redact(self, text: str) -> str:
        s3 = self.repository.s3
        return redact(text, [self.repository.cipher_pass, s3.secret_key if s3 else None])


class _Producer:
    """A program whose standard output feeds a restic backup from stdin."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        base = {key: os.environ[key] for key in ("PATH", "LANG", "HOME") if key in os.environ}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
                argv, env={**base, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise BackupEngineError(f"{argv[0]} is not installed") from None
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def stdout_fd(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def finish(self, timeout: float | None) -> str | None:
        """None when the program succeeded, else the end of what it said."""
        assert self.process.stdout is not None
        self.process.stdout.close()
        code = self.process.wait(timeout)
        self._reader.join(5)
        if code == 0:
            return None
        text = b"".join(self._err).decode(errors="replace").strip().splitlines()
        return f"exit {code}: " + (" | ".join(text[-5:]) or "it printed nothing")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for chunk in self.process.stderr:
            self._err.append(chunk)


def _snapshot(item: dict[str, Any]) -> Snapshot:
    try:
        return Snapshot(
            id=str(item["id"]),
            short_id=str(item.get("short_id") or str(item["id"])[:8]),
            time=datetime.fromisoformat(str(item["time"])),
            tags=tuple(item.get("tags") or ()),
            paths=tuple(item.get("paths") or ()),
            hostname=str(item.get("hostname", "")),
        )
    except (KeyError, ValueError) as exc:
        raise BackupEngineError(f"restic listed a snapshot opsplane cannot read ({exc}): "
                                f"{str(item)[:200]}") from None
