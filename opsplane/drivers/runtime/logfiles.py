"""Instance log files: written with a UTC timestamp on every line and rotated by size by each
instance's log writer (`logwriter.py`, a process of its own), read back here merged across
instances with --since/--grep/--tail, and followed through rotations.

One file per service instance, `<service>.<instance>.log`; rotated copies are `.log.1`
(newest) to `.log.<backups>`. Each line is

    2026-01-06T10:00:00.123456Z stdout the text the program wrote

The timestamp has a fixed width, so comparing the text compares the times: `--since` never
parses a line it is going to skip.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from opsplane.drivers.runtime.base import LogLine
from opsplane.drivers.runtime.logwriter import STAMP as _STAMP
from opsplane.drivers.runtime.logwriter import RotatingLog as RotatingLog
from opsplane.drivers.runtime.logwriter import log_path as log_path
from opsplane.drivers.runtime.logwriter import stamp as stamp
from opsplane.errors import UsageError

_STAMP_WIDTH = 27
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (stdout|stderr) (.*)$", re.DOTALL)
_EPOCH = "1970-01-01T00:00:00.000000Z"


def instance_files(log_dir: Path, service: str) -> dict[int, list[Path]]:
    """Each instance's log files of `service`, oldest first (rotated ones, then the current)."""
    pattern = re.compile(rf"^{re.escape(service)}\.(\d+)\.log(?:\.(\d+))?$")
    found: dict[int, list[tuple[int, Path]]] = {}
    if not log_dir.is_dir():
        return {}
    for path in log_dir.iterdir():
        match = pattern.match(path.name)
        if match:
            age = int(match.group(2) or 0)
            found.setdefault(int(match.group(1)), []).append((age, path))
    return {
        instance: [path for _, path in sorted(paths, key=lambda item: -item[0])]
        for instance, paths in sorted(found.items())
    }


@dataclass(frozen=True)
class _Raw:
    """A line not yet parsed, with the sort key that merging uses."""

    key: str
    instance: int
    text: str


class _Follower:
    """An open current log file of one instance, read to its end again and again."""

    def __init__(self, path: Path, instance: int) -> None:
        self.path = path
        self.instance = instance
        self.handle: BinaryIO = path.open("rb")
        self.partial = b""
        self.last_key = _EPOCH

    def read_new(self) -> list[_Raw]:
        """Complete lines written since the last call; follows a rotation to the new file."""
        lines = self._drain()
        if self._rotated():
            self.handle.close()
            self.partial = b""
            self.handle = self.path.open("rb")
            lines += self._drain()
        return lines

    def _drain(self) -> list[_Raw]:
        data = self.partial + self.handle.read()
        *complete, self.partial = data.split(b"\n")
        raws = []
        for chunk in complete:
            text = chunk.decode("utf-8", "replace")
            key = text[:_STAMP_WIDTH] if _LINE.match(text) else self.last_key
            self.last_key = key
            raws.append(_Raw(key, self.instance, text))
        return raws

    def _rotated(self) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def close(self) -> None:
        self.handle.close()


def _read_path(path: Path, instance: int, cutoff: str | None) -> Iterator[_Raw]:
    if cutoff is not None and _modified_before(path, cutoff):
        return
    previous = _EPOCH
    with path.open("rb") as handle:
        for chunk in handle:
            text = chunk.decode("utf-8", "replace").rstrip("\n")
            key = text[:_STAMP_WIDTH] if _LINE.match(text) else previous
            previous = key
            yield _Raw(key, instance, text)


def _modified_before(path: Path, cutoff: str) -> bool:
    try:
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return True
    return stamp(modified) < cutoff


def _parse(raw: _Raw, service: str) -> LogLine:
    match = _LINE.match(raw.text)
    ts = datetime.strptime(raw.key, _STAMP).replace(tzinfo=UTC)
    if match is None:
        return LogLine(ts, service, raw.instance, "stdout", raw.text)
    return LogLine(ts, service, raw.instance, match.group(2), match.group(3))


def compile_grep(grep: str | None) -> re.Pattern[str] | None:
    """The --grep pattern compiled; raises UsageError naming what is wrong with it."""
    if grep is None:
        return None
    try:
        return re.compile(grep)
    except re.error as exc:
        raise UsageError(f"invalid --grep pattern {grep!r}: {exc}") from None


def read_logs(
    log_dir: Path,
    service: str,
    *,
    since: datetime | None = None,
    grep: str | None = None,
    follow: bool = False,
    tail: int | None = None,
    poll: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogLine]:
    """The service's lines from every instance, oldest first; `tail` keeps the last N that pass
    `since` and `grep`; `follow` then yields new lines until the caller stops iterating."""
    pattern = compile_grep(grep)
    cutoff = stamp(since) if since is not None else None
    if tail is not None and tail < 0:
        raise UsageError(f"--tail takes a number of lines, 0 or more; got {tail}")

    def keep(line: LogLine) -> bool:
        return pattern is None or pattern.search(line.text) is not None

    followers: dict[int, _Follower] = {}
    try:
        history = _history(log_dir, service, cutoff, followers)
        lines: Iterable[LogLine] = (line for line in (_parse(raw, service) for raw in history) if keep(line))
        if tail is not None:
            lines = deque(lines, maxlen=tail)
        yield from lines
        while follow:
            sleep(poll)
            for line in _new_lines(log_dir, service, followers):
                if keep(line):
                    yield line
    finally:
        for follower in followers.values():
            follower.close()


def _history(
    log_dir: Path, service: str, cutoff: str | None, followers: dict[int, _Follower]
) -> Iterator[_Raw]:
    """Every instance's lines merged by time; opens the current files into `followers` first,
    so a line written while the history is read is not lost for following."""
    streams = []
    for instance, paths in instance_files(log_dir, service).items():
        rotated, current = _split(paths)
        parts: list[Iterator[_Raw]] = [_read_path(path, instance, cutoff) for path in rotated]
        if current is not None:
            follower = _Follower(current, instance)
            followers[instance] = follower
            parts.append(iter(follower.read_new()))
        streams.append(_chain(parts))
    merged = heapq.merge(*streams, key=lambda raw: raw.key)
    return (raw for raw in merged if cutoff is None or raw.key >= cutoff)


def _split(paths: list[Path]) -> tuple[list[Path], Path | None]:
    """(rotated files oldest first, the current file if there is one)."""
    if paths and paths[-1].name.endswith(".log"):
        return paths[:-1], paths[-1]
    return paths, None


def _chain(parts: list[Iterator[_Raw]]) -> Iterator[_Raw]:
    for part in parts:
        yield from part


def _new_lines(log_dir: Path, service: str, followers: dict[int, _Follower]) -> list[LogLine]:
    """Lines written since the last look, by time; picks up instances that appeared meanwhile."""
    for instance, paths in instance_files(log_dir, service).items():
        _, current = _split(paths)
        if instance not in followers and current is not None:
            followers[instance] = _Follower(current, instance)
    raws = [raw for follower in followers.values() for raw in follower.read_new()]
    raws.sort(key=lambda raw: raw.key)
    return [_parse(raw, service) for raw in raws]
