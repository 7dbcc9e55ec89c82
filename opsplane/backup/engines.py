"""The seam between the backup domain and the engines it drives: one `Engine` per policy, doing
the engine's work for the flows, and the values they exchange.

Each engine (pgBackRest for PostgreSQL; restic under Redis snapshots, file trees, dumps and
opsplane's own store) lives in `engine_*.py` beside this module and wraps the drivers of
`opsplane/drivers/backup`; `factory.open_engine` builds the one of a policy from the
inventory. The flows (`flows.py`) only speak this protocol, so their tests can
hand them a plain engine of their own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from opsplane.backup.policy import AppliedPolicy
from opsplane.drivers.backup.base import BackupOutcome, Progress, Repository


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
