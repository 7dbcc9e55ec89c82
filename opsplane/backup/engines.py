"""The seam between the backup domain and the engines it drives: one `Engine` per policy, built
from the inventory with its secrets resolved, doing the engine's work for the flows.

Each engine (pgBackRest for PostgreSQL; restic under Redis snapshots, file trees, dumps and
opsplane's own store) lives in `engine_*.py` beside this module and wraps the drivers of
`opsplane/drivers/backup`. The flows (`flows.py`) only speak this protocol, so their tests can
hand them a plain engine of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsplane.backup.policy import AppliedPolicy, repository_dir
from opsplane.config.types import SecretRef
from opsplane.drivers.backup.base import BackupOutcome, Progress, Repository, S3Location
from opsplane.errors import UsageError

if TYPE_CHECKING:
    from opsplane.config.models import Inventory


@dataclass(frozen=True)
class Restored:
    """A copy restored into a scratch server that runs while the context is open: where it is,
    and what the restored data holds (tables and row counts, or keys per database)."""

    address: str
    contents: Mapping[str, Any]
    checks: Mapping[str, Any] = field(default_factory=dict)  # pg_amcheck and the like: name -> problems
    recovered_to: datetime | None = None  # the newest moment the restored data reflects
    newest_marker: datetime | None = None  # a drill's newest marker row found in the copy


@dataclass(frozen=True)
class CopyRef:
    """One catalogued copy: which backup, in which repository, under which engine label."""

    backup_id: int
    repository: str
    label: str
    facts: Mapping[str, Any]
    checksum: str | None = None


@dataclass(frozen=True)
class ArchiveState:
    """Where continuous archiving (PostgreSQL's WAL) stands: the server's newest archived segment
    and when, whether its archive_command is failing now (and why), and the newest segment each
    repository holds."""

    last_archived_wal: str | None
    last_archived_time: datetime | None
    failing: str | None  # the failure, while the newest attempt failed
    repositories: Mapping[str, str | None]  # repository -> newest WAL segment it holds


class Engine(Protocol):
    """What the flows ask of a policy's engine."""

    policy: AppliedPolicy
    repositories: tuple[Repository, ...]

    def prepare(self) -> None:
        """Make the repositories ready (pgBackRest's stanza, restic's init); idempotent."""

    def backup(self, kind: str, progress: Progress) -> BackupOutcome:
        """Take one backup of `kind` into every repository, in order; BackupEngineError when
        any repository could not be written (then nothing of it is catalogued)."""

    def held(self, repository: str) -> set[str]:
        """The labels the repository holds now."""

    def check(self, repository: str) -> list[str]:
        """The engine's own check of a repository (pgBackRest verify, restic check with every
        byte read): the problems it found, none when sound."""

    def restore_scratch(self, copy: CopyRef, scratch: Path, *, at: datetime | None = None,
                        latest: bool = False, drill: str | None = None) -> AbstractContextManager[Restored]:
        """Restore `copy` (to `at`, or with `latest` to the newest recoverable point, where the
        engine can) into a scratch server under `scratch`, running while the context is open,
        removed after; with `drill`, the newest marker row of that drill found in it."""

    def markers(self, drill: str, every: float) -> AbstractContextManager[Callable[[], int]]:
        """While open, a marker row (its time) written into production every `every` seconds
        for drill `drill`; yields a function that says how many were written. Engines without
        rows to write (Redis, files) write none."""

    def expire(self, repository: str, label: str) -> None:
        """Remove one backup from one repository."""

    def archive_state(self) -> ArchiveState | None:
        """Continuous archiving's state, for engines that archive (None for the others)."""


def resolve_repositories(inv: Inventory, policy: AppliedPolicy, *, environ: Mapping[str, str],
                         base_dir: Path) -> tuple[Repository, ...]:
    """The policy's repositories as the drivers take them: secrets read, directories absolute,
    each policy in a folder of its own. SecretError names a reference that cannot be read."""
    if policy.encryption_key is None:
        raise UsageError(f"backup policy {policy.name} has no encryption key: set "
                         "backup.encryption_key or the policy's encryption_key")
    env = dict(environ)
    key = SecretRef(policy.encryption_key).resolve(env)
    resolved = []
    for name in policy.repositories:
        settings = inv.backup.repositories[name]
        s3 = None
        if settings.s3 is not None:
            bucket = settings.s3
            s3 = S3Location(endpoint=bucket.endpoint, bucket=bucket.bucket, region=bucket.region,
                            access_key=SecretRef(bucket.access_key).resolve(env),
                            secret_key=SecretRef(bucket.secret_key).resolve(env),
                            ca_file=_absolute(bucket.ca_file, base_dir), verify_tls=bucket.verify_tls,
                            uri_style=bucket.uri_style)
            path = f"{(settings.path or '/opsplane').rstrip('/')}/{policy.name}"
        else:
            path = str(_absolute_path(repository_dir(inv, name, settings), base_dir) / policy.name)
        resolved.append(Repository(name=name, path=path, cipher_pass=key, s3=s3,
                                   offsite=settings.is_offsite))
    return tuple(resolved)


def open_engine(inv: Inventory, policy: AppliedPolicy, *, environ: Mapping[str, str],
                base_dir: Path) -> Engine:
    """The engine of `policy`, ready to use."""
    repositories = resolve_repositories(inv, policy, environ=environ, base_dir=base_dir)
    state_dir = _absolute_path(Path(inv.runtime.state_dir), base_dir)
    if policy.engine == "pgbackrest":
        from opsplane.backup.engine_pgbackrest import PgBackRestEngine

        return PgBackRestEngine(inv, policy, repositories, state_dir=state_dir, environ=environ)
    from opsplane.backup.engine_restic import open_restic_engine

    return open_restic_engine(inv, policy, repositories, state_dir=state_dir, environ=environ,
                              base_dir=base_dir)


def _absolute(path: str | None, base_dir: Path) -> str | None:
    return None if path is None else str(_absolute_path(Path(path), base_dir))


def _absolute_path(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else base_dir / path


def repository_labels(engine: Engine) -> Iterator[tuple[str, set[str]]]:
    """Each repository's name and the labels it holds."""
    for repository in engine.repositories:
        yield repository.name, engine.held(repository.name)
