"""The same data kept in several restic repositories, and the checksums that name it.

A component's backup (a Redis snapshot, a dump, a file tree) is saved once per repository:
first to those in a directory (quick, on the platform), then to each other one (a bucket,
off the platform), one `StoredCopy` each. Restoring takes a `StoredCopy` and reads it from
the repository it names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from opsplane.drivers.backup.base import (
    BackupEngineError,
    Progress,
    Repository,
    StoredCopy,
    no_progress,
)
from opsplane.drivers.backup.restic import Restic, SavedSnapshot

_CHUNK = 1024 * 1024


class ResticCopies:
    """restic on every repository a component's backups go to.

    The repositories are used local ones first, otherwise in the order given; each is
    created (`restic init`) the first time it is used. `host`, `cache_dir` and `timeout` are
    handed to every `Restic`."""

    def __init__(
        self,
        repositories: Sequence[Repository],
        *,
        host: str | None = None,
        cache_dir: str | None = None,
        timeout: float | None = 3600,
    ) -> None:
        if not repositories:
            raise BackupEngineError("a backup needs at least one repository to keep it in")
        names = [repository.name for repository in repositories]
        if len(set(names)) != len(names):
            raise BackupEngineError(f"repository names must be distinct: {names}")
        self.cache_dir = cache_dir
        ordered = sorted(repositories, key=lambda repository: repository.kind != "posix")
        self.engines = [Restic(repository, host=host, cache_dir=cache_dir, timeout=timeout)
                        for repository in ordered]
        self._ready: set[str] = set()

    def engine(self, repository: str) -> Restic:
        """The Restic of the repository named `repository`."""
        for restic in self.engines:
            if restic.name == repository:
                return self._prepared(restic)
        known = ", ".join(restic.name for restic in self.engines)
        raise BackupEngineError(f"there is no repository {repository!r} here (known: {known})")

    def prepare(self, repository: str) -> None:
        """Make the repository, once (`restic init`)."""
        self.engine(repository)

    def held(self, repository: str) -> set[str]:
        """The snapshots there, by full and short id (a backup is catalogued by its short one)."""
        return {name for snapshot in self.engine(repository).snapshots()
                for name in (snapshot.id, snapshot.short_id)}

    def check(self, repository: str) -> list[str]:
        """restic's check of the repository's structure: the problems found."""
        return self.engine(repository).check(read_data=False)

    def remove(self, repository: str, label: str) -> None:
        """Forget one snapshot and prune what only it used."""
        restic = self.engine(repository)
        restic.forget([label])
        restic.prune()

    def save_paths(
        self,
        paths: Sequence[str | Path],
        *,
        tags: Iterable[str],
        cwd: str | Path | None = None,
        progress: Progress = no_progress,
    ) -> tuple[tuple[StoredCopy, ...], SavedSnapshot]:
        """Back `paths` up to every repository. The copies, one per repository, and what the
        first backup saved (sizes and file count, the same data for every copy).

        `progress` gets ("backup", fraction) for the first repository and
        ("copy to NAME", fraction) for each other one."""
        tag_list = list(tags)
        copies: list[StoredCopy] = []
        first: SavedSnapshot | None = None
        for index, restic in enumerate(self.engines):
            phase = "backup" if index == 0 else f"copy to {restic.name}"
            saved = self._prepared(restic).backup_paths(
                paths, tags=tag_list, cwd=cwd, progress=_renamed(progress, phase))
            copies.append(StoredCopy(restic.name, saved.snapshot_id, saved.stored_bytes))
            first = first or saved
        assert first is not None
        return tuple(copies), first

    def restore(
        self, copy: StoredCopy, target_dir: str | Path, include: Sequence[str] | None = None
    ) -> None:
        """Write the snapshot `copy` names, from its repository, under `target_dir`."""
        self.engine(copy.repository).restore(copy.label, target_dir, include=include)

    def restore_file(self, copy: StoredCopy, target_dir: str | Path, name: str, *, what: str) -> Path:
        """Write the one file `name` at the root of snapshot `copy` into `target_dir`; its path.
        BackupEngineError naming `what` when the snapshot holds no such file."""
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        self.restore(copy, target, include=[f"/{name}"])
        path = target / name
        if not path.is_file():
            raise BackupEngineError(f"{what}: snapshot {copy.label} in repository "
                                    f"{copy.repository!r} holds no {name}")
        return path

    def _prepared(self, restic: Restic) -> Restic:
        """`restic` with its repository made, once: a repository found once is remembered in
        the cache directory, since every restic command spends most of a second on its key."""
        if restic.name in self._ready:
            return restic
        known = self._known(restic)
        if known is None or not known.exists():
            restic.init()
            if known is not None:
                known.parent.mkdir(parents=True, exist_ok=True)
                known.write_text(restic.location + "\n")
        self._ready.add(restic.name)
        return restic

    def _known(self, restic: Restic) -> Path | None:
        """The file that says this repository exists (None without a cache directory)."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(restic.location.encode()).hexdigest()[:16]
        return Path(self.cache_dir) / "opsplane-known" / digest


def _renamed(progress: Progress, phase: str) -> Progress:
    def report(_phase: str, fraction: float | None) -> None:
        progress(phase, fraction)

    return report


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(root: str | Path, paths: Iterable[str | Path] | None = None) -> list[str]:
    """One line per file under `root` (or under each of `paths`, which lie inside `root`),
    sorted by path: its SHA-256, its size and its path relative to `root`."""
    base = Path(root)
    found: set[Path] = set()
    for start in [Path(path) for path in paths] if paths is not None else [base]:
        found.update(path for path in [start, *start.rglob("*")]
                     if path.is_file() and not path.is_symlink())
    return [f"{file_sha256(path)}  {path.stat().st_size}  {path.relative_to(base).as_posix()}"
            for path in sorted(found)]


def manifest_sha256(root: str | Path, paths: Iterable[str | Path] | None = None) -> str:
    """The SHA-256 of `manifest(root, paths)` (each line ended by a newline): one checksum
    naming every file's content, size and place."""
    text = "".join(line + "\n" for line in manifest(root, paths))
    return hashlib.sha256(text.encode()).hexdigest()
