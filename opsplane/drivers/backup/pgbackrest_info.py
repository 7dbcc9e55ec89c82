"""What pgBackRest says about a stanza and its repositories, as typed values.

`parse_info` reads `pgbackrest info --output=json` (format 5, pgBackRest 2.x); `parse_verify`
reads what `pgbackrest verify` logs at level info or detail, which is the only place it tells
what it found: in 2.45 it exits 0 even when files are corrupt. `explain_failure` turns what
a failed command printed into the part a person needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsplane.drivers.backup.base import BackupEngineError
from opsplane.drivers.backup.base import redact as base_redact

_UNREADABLE = re.compile(r"[^\x20-\x7e\n]+")  # what a wrong cipher pass decrypts into

# Stanza and repository status codes of `info` (pgBackRest's INFO_STANZA_STATUS_CODE_*).
STATUS_OK = 0
STATUS_MISSING_STANZA_PATH = 1
STATUS_NO_BACKUP = 2
STATUS_MISSING_STANZA_DATA = 3


@dataclass(frozen=True)
class BackupSet:
    """One backup in one repository: `kind` full/diff/incr, `prior` the backup a diff or incr
    builds on; sizes are of the data (`size_bytes`, `delta_bytes` for what this one copied)
    and of what the repository stores (`repo_bytes`, `repo_delta_bytes`)."""

    repo: int
    repository: str
    label: str
    kind: str
    prior: str | None
    started: datetime
    finished: datetime
    size_bytes: int
    delta_bytes: int
    repo_bytes: int
    repo_delta_bytes: int
    wal_start: str | None
    wal_stop: str | None
    lsn_start: str | None
    lsn_stop: str | None
    error: bool  # pgBackRest found page checksum errors while copying
    references: tuple[str, ...] = ()
    pg_version: str | None = None


@dataclass(frozen=True)
class ArchiveRange:
    """The WAL a repository holds for one database history (`archive_id`, e.g. "15-1")."""

    repo: int
    repository: str
    archive_id: str
    wal_min: str | None
    wal_max: str | None


@dataclass(frozen=True)
class RepoStatus:
    """Whether the stanza is usable in a repository: `code` 0 is ok, 1 a missing stanza,
    2 no backup yet, 99 an error `message` tells (a wrong cipher pass, say)."""

    repo: int
    repository: str
    code: int
    message: str

    @property
    def ok(self) -> bool:
        return self.code in (STATUS_OK, STATUS_NO_BACKUP)

    @property
    def missing(self) -> bool:
        return self.code in (STATUS_MISSING_STANZA_PATH, STATUS_MISSING_STANZA_DATA)


@dataclass(frozen=True)
class StanzaInfo:
    """A stanza as every repository sees it; backups oldest first within each repository."""

    name: str
    status_code: int
    status_message: str
    backup_running: bool
    repos: tuple[RepoStatus, ...]
    backups: tuple[BackupSet, ...]
    archives: tuple[ArchiveRange, ...]

    def backups_in(self, repo: int) -> tuple[BackupSet, ...]:
        return tuple(backup for backup in self.backups if backup.repo == repo)

    def backup(self, label: str, repo: int | None = None) -> BackupSet | None:
        """The backup named `label` (in `repo`, when given), or None."""
        for backup in self.backups:
            if backup.label == label and (repo is None or backup.repo == repo):
                return backup
        return None

    def status_of(self, repo: int) -> RepoStatus | None:
        return next((status for status in self.repos if status.repo == repo), None)


@dataclass(frozen=True)
class VerifyReport:
    """What `pgbackrest verify` found in one repository: `problems` is empty when every
    file of every backup and the archive checked out."""

    repo: int
    repository: str
    status: str  # "ok" or "error", as pgBackRest summarises it
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_info(text: str, stanza: str, names: Mapping[int, str] | None = None) -> StanzaInfo:
    """The stanza `stanza` from `info --output=json`; `names` maps repository keys (1..4) to
    opsplane's names for them. BackupEngineError when the text is not what pgBackRest writes."""
    names = names or {}
    try:
        # A repository read with a wrong cipher pass puts what it decrypted, control
        # characters and all, into its status message.
        document = json.loads(text, strict=False)
        entry = next(item for item in document if item.get("name") == stanza)
    except (ValueError, TypeError, AttributeError):
        raise BackupEngineError(f"pgBackRest info for stanza {stanza}: not the JSON it writes: "
                                f"{_clip(text)}") from None
    except StopIteration:
        raise BackupEngineError(f"pgBackRest info does not mention stanza {stanza}") from None
    try:
        return _stanza(entry, stanza, names)
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupEngineError(f"pgBackRest info for stanza {stanza}: unexpected JSON "
                                f"({type(exc).__name__}: {exc})") from None


def _stanza(entry: Mapping[str, Any], stanza: str, names: Mapping[int, str]) -> StanzaInfo:
    def name(key: int) -> str:
        return names.get(key, f"repo{key}")

    repos = tuple(
        RepoStatus(repo=int(repo["key"]), repository=name(int(repo["key"])),
                   code=int(repo["status"]["code"]),
                   message=_UNREADABLE.sub("…", str(repo["status"]["message"])))
        for repo in entry.get("repo", [])
    )
    versions = {(int(db["repo-key"]), int(db["id"])): str(db["version"])
                for db in entry.get("db", [])}
    backups = tuple(_backup(item, name, versions) for item in entry.get("backup", []))
    archives = tuple(
        ArchiveRange(repo=int(item["database"]["repo-key"]),
                     repository=name(int(item["database"]["repo-key"])),
                     archive_id=str(item["id"]), wal_min=item.get("min"), wal_max=item.get("max"))
        for item in entry.get("archive", [])
    )
    status = entry.get("status", {})
    lock = status.get("lock", {}).get("backup", {})
    return StanzaInfo(
        name=stanza, status_code=int(status.get("code", 99)),
        status_message=str(status.get("message", "")), backup_running=bool(lock.get("held")),
        repos=repos, backups=backups, archives=archives,
    )


def _backup(item: Mapping[str, Any], name: Any, versions: Mapping[tuple[int, int], str]) -> BackupSet:
    repo = int(item["database"]["repo-key"])
    info = item["info"]
    archive = item.get("archive") or {}
    lsn = item.get("lsn") or {}
    return BackupSet(
        repo=repo, repository=name(repo), label=str(item["label"]), kind=str(item["type"]),
        prior=item.get("prior"),
        started=datetime.fromtimestamp(int(item["timestamp"]["start"]), UTC),
        finished=datetime.fromtimestamp(int(item["timestamp"]["stop"]), UTC),
        size_bytes=int(info["size"]), delta_bytes=int(info["delta"]),
        repo_bytes=int(info["repository"]["size"]),
        repo_delta_bytes=int(info["repository"]["delta"]),
        wal_start=archive.get("start"), wal_stop=archive.get("stop"),
        lsn_start=lsn.get("start"), lsn_stop=lsn.get("stop"),
        error=bool(item.get("error", False)),
        references=tuple(item.get("reference") or ()),
        pg_version=versions.get((repo, int(item["database"]["id"]))),
    )


# What verify logs when a file is wrong: "invalid checksum 'LABEL/pg_data/…'",
# "invalid size '…'", "file missing '…'", "unable to …".
_FILE_PROBLEM = re.compile(r"\b(?:INFO|WARN|ERROR):\s+((?:invalid|missing|file missing|unable)\b.*)$")
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ P\d+\s+")
# The summary after "stanza: NAME", one indented line each.
_SUMMARY_STATUS = re.compile(r"^status:\s*(\w+)")
_SUMMARY_BACKUP = re.compile(r"^backup:\s*([^,]+),\s*status:\s*(\w+)")
_SUMMARY_ARCHIVE = re.compile(r"^archiveId:\s*([^,]+),\s*total WAL checked:\s*(\d+),"
                              r"\s*total valid WAL:\s*(\d+)")
_SUMMARY_COUNT = re.compile(r"^([a-z][a-z ]+):\s*(\d+)$")


def parse_verify(text: str, repo: int, repository: str = "") -> VerifyReport:
    """The report of a `verify` run's console output (log level info or detail): each
    file pgBackRest named, then each backup or archive its summary calls invalid."""
    problems: list[str] = []
    status = "ok"
    in_summary = False
    subject = ""
    for raw in text.splitlines():
        if _LOG_PREFIX.match(raw):
            body = _LOG_PREFIX.sub("", raw).strip()
            in_summary = body.startswith("INFO: stanza:")
            if not in_summary and (found := _FILE_PROBLEM.search(body)):
                problems.append(found.group(1))
            continue
        line = raw.strip()
        if not in_summary or not line:
            continue
        if found := _SUMMARY_STATUS.match(line):
            status = found.group(1)
        elif found := _SUMMARY_BACKUP.match(line):
            subject = f"backup {found.group(1)}"
            if found.group(2) != "valid":
                problems.append(f"{subject} is {found.group(2)}")
        elif found := _SUMMARY_ARCHIVE.match(line):
            subject = f"archive {found.group(1)}"
            checked, valid = int(found.group(2)), int(found.group(3))
            if checked != valid:
                problems.append(f"{subject}: {checked - valid} of {checked} WAL files invalid")
        elif found := _SUMMARY_COUNT.match(line):
            if int(found.group(2)) > 0:
                problems.append(f"{subject}: {found.group(1)}: {found.group(2)}")
        elif status != "ok":
            problems.append(line)
    if status != "ok" and not problems:
        problems.append(f"pgBackRest verify reports status {status}")
    return VerifyReport(repo=repo, repository=repository or f"repo{repo}", status=status,
                        problems=tuple(problems))


_ERROR_START = re.compile(r"^(?:\S+ \S+ P\d+\s+)?(ERROR|ASSERT): \[(\d+)\]: ?(.*)$")
_CRYPTO_SIGNS = ("CryptoError", "key/value found outside of section", "cipher header invalid")


def explain_failure(output: str, secrets: Iterable[str] = ()) -> str:
    """pgBackRest's error (code and message) and the lines that follow it (causes, hints)
    on one line, without the bytes a wrong cipher pass decrypts into and with each of
    `secrets` replaced by <redacted>; "" when it printed no ERROR."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if _ERROR_START.match(line)), None)
    if start is None:
        return ""
    first = _ERROR_START.match(lines[start])
    assert first is not None
    picked = [f"[{first.group(2)}] {first.group(3).strip()}"]
    for line in lines[start + 1:start + 10]:
        line = line.strip()
        if line and not _ERROR_START.match(line) and line not in picked:
            picked.append(line)
    text = " | ".join(picked)
    if any(sign in text for sign in _CRYPTO_SIGNS):
        text += (" | hint: the repository could not be decrypted: is its cipher pass the one "
                 "it was created with?")
    return redact(text, secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` on one line, unreadable bytes and each of `secrets` taken out."""
    return base_redact(_UNREADABLE.sub("…", text.replace("\n", " ")), secrets)


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
