"""pgBackRest for one PostgreSQL cluster (a stanza): its configuration, WAL archiving,
backups into up to four repositories, what they hold, verification, restore and expiry.

Files, all in a configuration directory opsplane owns (`config_dir`):

- `pgbackrest.conf` (0644, ours): everything but secrets, so a person or a support bundle
  can read it: repositories, compression, paths, the stanza's data directory and socket.
- `conf.d/secrets.conf` (0600, in a 0700 directory, both the cluster's OS user's): the
  repositories' cipher passes and S3 keys. Every command names that directory with
  `--config-include-path`. They cannot be handed over on the command line (visible in `ps`
  and, for archive_command, in pg_settings to any database user) nor in the environment,
  because the one command opsplane does not start itself, PostgreSQL's archive_command
  (`archive-push`, run by the server as its OS user), needs them too: a file only that user
  can read is the one place both reach.
- `log/`, `lock/`, `spool/`: pgBackRest's own, writable by the cluster's OS user.

Retention is opsplane's decision: repositories are configured to keep every full backup
(`repoN-retention-full` at pgBackRest's maximum), so pgBackRest never expires a backup on its
own, and `expire(label, repo)` removes one named set when opsplane says so.

Object-store repositories bundle small files (`repoN-bundle`): one request per file made a
backup of an empty cluster take ~1000 requests.

A backup tells its caller the moment pgBackRest calls PostgreSQL's pg_backup_stop (`on_stopping`),
which writes the backup's end into the WAL at once and then waits for the archive, and the moment
it has returned (`on_stopped`), while pgBackRest still checks the archive, writes the manifest and
expires: what must follow the backup's end can start there.
Once pgBackRest has exited, the backup is read back from `info` (of that repository alone) and
its manifest fetched (`repo-get`), the two commands at once.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shlex
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import (
    BackupEngineError,
    BackupOutcome,
    Progress,
    Repository,
    StoredCopy,
    no_progress,
)
from opsplane.drivers.backup.pgbackrest_info import (
    StanzaInfo,
    VerifyReport,
    explain_failure,
    parse_info,
    parse_verify,
    redact,
)

BackupKind = Literal["full", "diff", "incr"]

_MAX_REPOS = 4
_KEEP_EVERYTHING = "9999999"  # the largest repoN-retention-full pgBackRest accepts
_COMMAND_TIMEOUT = 6 * 3600.0
_PROGRESS = re.compile(r"\bfile\b.*\(([^()]*), (\d+(?:\.\d+)?)%\)")
_NEW_LABEL = re.compile(r"new backup label = (\S+)")
# printed (level info) as pgBackRest calls pg_backup_stop, which then waits for the archive
_STOPPING = re.compile(r"execute (?:non-)?exclusive backup stop")
# printed (level info) once pg_backup_stop has returned, before the archive wait and the manifest
_STOPPED = re.compile(r"backup stop archive = \S+, lsn = ([0-9A-Fa-f]+/[0-9A-Fa-f]+)")


@dataclass(frozen=True)
class Restored:
    """A data directory pgBackRest restored: start it (see `TemporaryPostgres.from_data_dir`)
    and PostgreSQL replays WAL to `recovery` ("time", "immediate", "default" = end of the
    archive), then promotes itself."""

    data_dir: Path
    repo: int
    label: str | None
    recovery: str
    target_time: datetime | None = None


class PgBackRest:
    """pgBackRest for the cluster in `data_dir` (listening on `port` at `socket_dir`, owned by
    OS account `os_user`, None = the account running opsplane), as stanza `stanza`.

    `repositories` are repo1.. in order (at most four); `config_dir` is opsplane's directory
    for this stanza. `data_dir`, `port` and `socket_dir` may be set after construction (a
    cluster's port is often known only once it runs): `archive_command()` does not depend on
    them. Every command runs as `os_user`; every failure is a BackupEngineError naming the
    stanza, the repository and pgBackRest's own message."""

    def __init__(
        self,
        stanza: str,
        *,
        data_dir: str | os.PathLike[str],
        port: int,
        socket_dir: str | os.PathLike[str],
        config_dir: str | os.PathLike[str],
        repositories: Sequence[Repository],
        os_user: str | None = None,
        db_user: str = "postgres",
        process_max: int = 2,
        executable: str | None = None,
        timeout: float = _COMMAND_TIMEOUT,
        io_timeout: float | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stanza):
            raise BackupEngineError(f"pgBackRest stanza name {stanza!r} must be letters, digits, "
                                    "'_', '.' or '-'")
        if not 1 <= len(repositories) <= _MAX_REPOS:
            raise BackupEngineError(f"pgBackRest stanza {stanza} needs one to {_MAX_REPOS} "
                                    f"repositories, not {len(repositories)}")
        self.stanza = stanza
        self.data_dir = Path(data_dir)
        self.port = port
        self.socket_dir = Path(socket_dir)
        self.config_dir = Path(config_dir)
        self.repositories = tuple(repositories)
        self.os_user = os_user
        self.db_user = db_user
        self.process_max = process_max
        self.executable = executable or shutil.which("pgbackrest") or "pgbackrest"
        self.timeout = timeout
        self.io_timeout = io_timeout  # pgBackRest's io-timeout: how long it retries a store

    # --- files ---------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.config_dir / "pgbackrest.conf"

    @property
    def include_dir(self) -> Path:
        return self.config_dir / "conf.d"

    def configure(self) -> Path:
        """Write the configuration (and the secrets file) afresh; returns the main file.
        Every command does this first, so a changed repository takes effect at once."""
        owner = self._owner()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.chmod(0o755)
        for name, mode in (("log", 0o750), ("lock", 0o750), ("spool", 0o750), ("conf.d", 0o700)):
            path = self.config_dir / name
            path.mkdir(exist_ok=True)
            path.chmod(mode)
            os.chown(path, owner.pw_uid, owner.pw_gid)
        secrets = self.include_dir / "secrets.conf"
        _write(secrets, self._render_secrets(), 0o600, owner)
        _write(self.config_file, self.render_config(), 0o644, None)
        return self.config_file

    def render_config(self) -> str:
        """pgbackrest.conf as `configure` writes it: no secret in it."""
        lines = ["[global]"]
        for index, repo in enumerate(self.repositories, start=1):
            key = f"repo{index}"
            lines += [f"{key}-type={repo.kind}", f"{key}-path={_repo_path(repo)}",
                      f"{key}-cipher-type=aes-256-cbc", f"{key}-retention-full={_KEEP_EVERYTHING}"]
            if repo.s3 is not None:
                s3 = repo.s3
                lines += [f"{key}-s3-bucket={s3.bucket}", f"{key}-s3-endpoint={s3.host}",
                          f"{key}-storage-port={s3.port}", f"{key}-s3-region={s3.region}",
                          f"{key}-s3-uri-style={s3.uri_style}",
                          f"{key}-storage-verify-tls={'y' if s3.verify_tls else 'n'}",
                          f"{key}-bundle=y"]
                if s3.ca_file:
                    lines.append(f"{key}-storage-ca-file={s3.ca_file}")
        lines += ["compress-type=zst", "start-fast=y", f"process-max={self.process_max}",
                  f"log-path={self.config_dir / 'log'}", f"lock-path={self.config_dir / 'lock'}",
                  f"spool-path={self.config_dir / 'spool'}", "log-level-file=info"]
        if self.io_timeout is not None:
            lines.append(f"io-timeout={self.io_timeout:g}")
        lines += ["",
                  f"[{self.stanza}]", f"pg1-path={self.data_dir}", f"pg1-port={self.port}",
                  f"pg1-socket-path={self.socket_dir}", f"pg1-user={self.db_user}"]
        for line in lines:
            _check_value(line, self.stanza)
        return "\n".join(lines) + "\n"

    def _render_secrets(self) -> str:
        lines = ["[global]"]
        for index, repo in enumerate(self.repositories, start=1):
            lines.append(f"repo{index}-cipher-pass={repo.cipher_pass}")
            if repo.s3 is not None:
                lines += [f"repo{index}-s3-key={repo.s3.access_key}",
                          f"repo{index}-s3-key-secret={repo.s3.secret_key}"]
        for line in lines:
            _check_value(line, self.stanza, secret=True)
        return "\n".join(lines) + "\n"

    # --- what PostgreSQL needs ---------------------------------------------------------------

    def archive_command(self) -> str:
        """The exact archive_command the cluster must have (PostgreSQL runs it with a shell)."""
        words = [*self._base_argv(), "archive-push"]
        return " ".join(shlex.quote(word) for word in words) + " %p"

    def archive_settings(self) -> dict[str, str]:
        """The server settings that make the cluster archive into this stanza, e.g. for
        `TemporaryPostgres(settings=...)` or postgresql.auto.conf. `archive_timeout` (30 s)
        bounds how long a quiet database's last commits wait in a segment that is not full:
        without it nothing limits the RPO; with it, what a restore can lose stays under about
        30 s (bench/backup.py measures it)."""
        return {"archive_mode": "on", "wal_level": "replica", "archive_timeout": "30",
                "archive_command": self.archive_command()}

    # --- commands ---------------------------------------------------------------------------

    def create_stanza(self) -> None:
        """Create the stanza in every repository (doing nothing where it exists)."""
        self._run(["stanza-create"], what="stanza-create")

    def check(self) -> None:
        """Prove archiving and every repository work: pgBackRest has PostgreSQL switch WAL and
        waits for the segment to arrive in each repository."""
        self._run(["check"], what="check")

    def backup(
        self, kind: BackupKind = "full", *, repo: int | str = 1, progress: Progress = no_progress,
        on_stopping: Callable[[], None] | None = None, on_stopped: Callable[[str], None] | None = None,
    ) -> BackupOutcome:
        """Take a `kind` backup into `repo` (index 1-4 or name); `progress` hears ("backup",
        fraction) as files are copied. `on_stopping` is called once as pg_backup_stop is
        called, `on_stopped` once, with the backup's stop LSN, as soon as it has returned (both in
        this thread, while pgBackRest goes on: they must return at once); neither when pgBackRest
        does not say so. Returns what it produced,
        read back from `info`."""
        if kind not in ("full", "diff", "incr"):
            raise BackupEngineError(f"pgBackRest backup kind must be full, diff or incr, not {kind!r}")
        index = self.repo_index(repo)
        labels: list[str] = []
        stopping: list[bool] = []
        stopped: list[str] = []

        def on_line(line: str) -> None:
            if found := _NEW_LABEL.search(line):
                labels.append(found.group(1))
            elif " DETAIL: " in line and (found := _PROGRESS.search(line)):
                progress("backup", min(float(found.group(2)) / 100.0, 1.0))
            elif not stopping and _STOPPING.search(line):
                stopping.append(True)
                if on_stopping is not None:
                    on_stopping()
            elif not stopped and (found := _STOPPED.search(line)):
                stopped.append(found.group(1))
                if on_stopped is not None:
                    on_stopped(found.group(1))

        progress("backup", 0.0)
        self._run(["backup", f"--type={kind}", f"--repo={index}", "--log-level-console=detail"],
                  what=f"{kind} backup", repo=index, on_line=on_line)
        progress("backup", 1.0)
        if not labels:
            raise BackupEngineError(f"pgBackRest {kind} backup of stanza {self.stanza} into "
                                    f"{self._repo_name(index)} did not say the new backup's label")
        label = labels[-1]
        # The set's entry in `info` and its manifest, both at once (the configuration the backup
        # just wrote is theirs: neither rewrites it, so they do not race on its files).
        manifest: list[str] = []
        failed: list[BaseException] = []

        def read_manifest() -> None:
            try:
                manifest.append(self._run(["repo-get", f"--repo={index}",
                                           f"backup/{self.stanza}/{label}/backup.manifest"],
                                          what="reading a backup manifest", repo=index,
                                          configure=False).stdout)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
                failed.append(exc)

        reader = threading.Thread(target=read_manifest, name=f"pgbackrest-manifest-{label}", daemon=True)
        reader.start()
        try:
            # `--repo` alone: `--set` would have info read and decrypt the manifest too
            found = self._info([f"--repo={index}"], configure=False).backup(label, index)
        finally:
            reader.join()
        if found is None:
            raise BackupEngineError(f"pgBackRest info of stanza {self.stanza} does not list "
                                    f"backup {label} in {self._repo_name(index)} it just made")
        if failed:
            raise failed[0]
        return BackupOutcome(
            kind=kind, started=found.started,
            finished=found.finished, size_bytes=found.size_bytes,
            # What this backup adds to the repository: an incr's own files, a full's all.
            copies=(StoredCopy(self._repo_name(index), label, found.repo_delta_bytes),),
            checksum=hashlib.sha256(manifest[0].encode()).hexdigest(),
            facts={"engine": "pgbackrest", "stanza": self.stanza, "repo": index,
                   "label": label, "prior": found.prior, "references": list(found.references),
                   "wal_start": found.wal_start, "wal_stop": found.wal_stop,
                   "lsn_start": found.lsn_start, "lsn_stop": found.lsn_stop,
                   "delta_bytes": found.delta_bytes, "repo_bytes": found.repo_bytes,
                   "repo_delta_bytes": found.repo_delta_bytes,
                   "pg_version": found.pg_version, "error": found.error},
        )

    def info(self) -> StanzaInfo:
        """Every repository's backups, archive range and the stanza's status in it."""
        return self._info([])

    def _info(self, args: list[str], *, configure: bool = True) -> StanzaInfo:
        done = self._run(["info", "--output=json", *args], what="info", configure=configure)
        names = {index: repo.name for index, repo in enumerate(self.repositories, start=1)}
        return parse_info(done.stdout, self.stanza, names)

    def verify(self, repo: int | str = 1) -> VerifyReport:
        """pgBackRest's `verify` of `repo`: every backup file and WAL segment read back and
        checked; the report's `problems` are empty when all is well."""
        index = self.repo_index(repo)
        done = self._run(["verify", f"--repo={index}", "--log-level-console=info"],
                         what="verify", repo=index)
        return parse_verify(done.stdout, index, self._repo_name(index))

    def restore(
        self,
        target_data_dir: str | os.PathLike[str],
        *,
        repo: int | str = 1,
        label: str | None = None,
        target_time: datetime | None = None,
        target_lsn: str | None = None,
        immediate: bool = False,
        delta: bool = False,
        keep_archiving: bool = False,
    ) -> Restored:
        """Restore into `target_data_dir`, which must be new or empty unless `delta`
        (pgBackRest then rewrites what differs, as for restoring over the cluster's own stopped
        directory, which is refused without it). Recovery goes to `target_time` (the latest
        backup before it, or `label`), else with `immediate` to the end of backup `label`
        (or the latest), else to the end of the archive; `target_lsn` recovers to exactly that
        WAL position (a moment some figures were read at). The copy does not archive
        (archive_mode=off) unless `keep_archiving`."""
        index = self.repo_index(repo)
        target = Path(target_data_dir).resolve()
        if not delta:
            if target == self.data_dir.resolve():
                raise BackupEngineError(f"restoring stanza {self.stanza} over its own data "
                                        f"directory {target} needs delta=True")
            if target.exists() and any(target.iterdir()):
                raise BackupEngineError(f"restore target {target} is not empty: restore into a "
                                        "new directory, or pass delta=True to overwrite it")
        if target_time is not None and target_time.tzinfo is None:
            raise BackupEngineError("a restore target time needs a time zone")
        owner = self._owner()
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(target, owner.pw_uid, owner.pw_gid)
        args = ["restore", f"--repo={index}", f"--pg1-path={target}"]
        if label is not None:
            args.append(f"--set={label}")
        if target_time is not None:
            recovery = "time"
            stamp = target_time.astimezone(UTC).isoformat(sep=" ")
            args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
        elif target_lsn is not None:
            if not re.fullmatch(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}", target_lsn):
                raise BackupEngineError(f"{target_lsn!r} is not a WAL position such as 0/3000060")
            recovery = "lsn"
            args += ["--type=lsn", f"--target={target_lsn}", "--target-action=promote"]
        elif immediate:
            recovery = "immediate"
            args += ["--type=immediate", "--target-action=promote"]
        else:
            recovery = "default"
            args.append("--type=default")
        if delta:
            args.append("--delta")
        if not keep_archiving:
            args.append("--archive-mode=off")
        self._run(args, what="restore", repo=index)
        return Restored(target, index, label, recovery, target_time)

    def expire(self, label: str, *, repo: int | str = 1) -> None:
        """Remove backup `label` (and the backups that depend on it) from `repo`, with the
        WAL no remaining backup needs."""
        index = self.repo_index(repo)
        self._run(["expire", f"--set={label}", f"--repo={index}"], what=f"expire of {label}",
                  repo=index)

    # --- helpers -----------------------------------------------------------------------------

    def repo_index(self, repo: int | str) -> int:
        """pgBackRest's number (1-4) of `repo`, given as that number or by name."""
        if isinstance(repo, int):
            if 1 <= repo <= len(self.repositories):
                return repo
        else:
            for index, candidate in enumerate(self.repositories, start=1):
                if candidate.name == repo:
                    return index
        known = ", ".join(f"{i} ({r.name})" for i, r in enumerate(self.repositories, start=1))
        raise BackupEngineError(f"stanza {self.stanza} has no repository {repo!r}; it has {known}")

    def _repo_name(self, index: int) -> str:
        return f"repo{index} ({self.repositories[index - 1].name})"

    def _base_argv(self) -> list[str]:
        return [self.executable, f"--config={self.config_file}",
                f"--config-include-path={self.include_dir}", f"--stanza={self.stanza}"]

    def _owner(self) -> pwd.struct_passwd:
        if self.os_user is None:
            return pwd.getpwuid(os.geteuid())
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise BackupEngineError(f"stanza {self.stanza}: there is no OS user "
                                    f"{self.os_user} to run pgBackRest as") from None

    def _run(
        self, args: list[str], *, what: str, repo: int | None = None,
        on_line: Callable[[str], None] | None = None, configure: bool = True,
    ) -> command.Finished:
        if configure:
            self.configure()
        where = f" in {self._repo_name(repo)}" if repo is not None else ""
        try:
            done = command.run([*self._base_argv(), *args], what=f"pgBackRest {what}",
                               user=self.os_user, on_line=on_line, timeout=self.timeout,
                               check=False)
        except BackupEngineError as exc:
            raise BackupEngineError(f"stanza {self.stanza}{where}: {exc}") from None
        if done.returncode != 0:
            explained = self._explain(done)
            if repo is None:  # a command of every repository: name the one the error is about
                named = [index for index, candidate in enumerate(self.repositories, start=1)
                         if _mentioned(candidate, explained)]
                where = f" in {self._repo_name(named[0])}" if len(named) == 1 else ""
            raise BackupEngineError(f"pgBackRest {what} of stanza {self.stanza}{where} failed "
                                    f"(exit {done.returncode}): {explained}")
        return done

    def _explain(self, done: command.Finished) -> str:
        secrets = [secret for repo in self.repositories for secret in (
            repo.cipher_pass, *((repo.s3.secret_key, repo.s3.access_key) if repo.s3 else ()))]
        return (explain_failure(done.stderr or done.stdout, secrets)
                or redact(command.tail(done), secrets))


def _mentioned(repo: Repository, message: str) -> bool:
    if repo.s3 is not None:
        return f"{repo.s3.host}:{repo.s3.port}" in message or f"'{_repo_path(repo)}/" in message
    return repo.path in message


def _repo_path(repo: Repository) -> str:
    if repo.s3 is not None and not repo.path.startswith("/"):
        return "/" + repo.path
    return repo.path


def _check_value(line: str, stanza: str, *, secret: bool = False) -> None:
    if "\n" in line or "\r" in line:
        name = line.split("=", 1)[0]
        shown = "" if secret else f": {line!r}"
        raise BackupEngineError(f"pgBackRest setting {name} of stanza {stanza} contains a line "
                                f"break{shown}")


def _write(path: Path, text: str, mode: int, owner: pwd.struct_passwd | None) -> None:
    """Replace `path` with `text`, created with `mode` (never readable by others meanwhile)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    if owner is not None:
        os.chown(temporary, owner.pw_uid, owner.pw_gid)
    os.replace(temporary, path)
