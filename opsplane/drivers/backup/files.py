"""A component's file tree (configuration, uploads, certificates) backed up with restic.

The paths are saved as they are on disk, by their absolute path; a restore writes them under
a target directory (`/srv/app/conf` becomes `TARGET/srv/app/conf`), never over the live
files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from opsplane.drivers.backup.base import (
    BackupEngineError,
    BackupOutcome,
    Progress,
    StoredCopy,
    no_progress,
)
from opsplane.drivers.backup.copies import ResticCopies, manifest_sha256

ENGINE = "files"


class FileTreeBackup:
    """Backups of the files and directories `paths` of `component` to every repository of
    `copies`."""

    def __init__(self, component: str, paths: Sequence[str | Path], copies: ResticCopies) -> None:
        if not paths:
            raise BackupEngineError(f"files backup of {component}: no paths given")
        self.component = component
        self.paths = [Path(path).absolute() for path in paths]
        self.copies = copies

    def backup(self, progress: Progress = no_progress) -> BackupOutcome:
        """Save the paths to every repository.

        The outcome's `size_bytes` and facts `file_count`/`total_bytes` are what restic read;
        `checksum` names every file's content and path (`copies.manifest`), read just
        after the backup, so a file changed meanwhile makes it differ from a restore's."""
        missing = [str(path) for path in self.paths if not path.exists()]
        if missing:
            raise BackupEngineError(f"files backup of {self.component}: these paths do not "
                                    f"exist: {', '.join(missing)}")
        started = datetime.now(UTC)
        stored, saved = self.copies.save_paths(
            self.paths, tags=[self.component, ENGINE], progress=progress)
        checksum = manifest_sha256("/", self.paths)
        return BackupOutcome(
            kind="files", started=started, finished=datetime.now(UTC),
            size_bytes=saved.size_bytes, copies=stored, checksum=checksum,
            facts={"file_count": saved.file_count, "total_bytes": saved.size_bytes,
                   "paths": [str(path) for path in self.paths]},
        )

    def restore(self, copy: StoredCopy, target_dir: str | Path) -> list[Path]:
        """Write the copy's files under `target_dir`; the restored places of the paths
        (`target_dir` joined with each absolute path)."""
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        self.copies.restore(copy, target)
        return [target / path.relative_to("/") for path in self.paths]

    def verify(self, copy: StoredCopy, outcome: BackupOutcome, target_dir: str | Path) -> list[str]:
        """Restore `copy` under `target_dir` and compare it with `outcome`: the problems found,
        none when every file came back with the content and size it had."""
        restored = self.restore(copy, target_dir)
        problems = []
        checksum = manifest_sha256(target_dir, restored)
        if checksum != outcome.checksum:
            problems.append(f"the restored files' manifest is {checksum}, the backup's was "
                            f"{outcome.checksum}")
        count = sum(1 for path in restored for found in [path, *path.rglob("*")]
                    if found.is_file())
        if count != outcome.facts.get("file_count"):
            problems.append(f"{count} files came back, the backup saved "
                            f"{outcome.facts.get('file_count')}")
        return problems
