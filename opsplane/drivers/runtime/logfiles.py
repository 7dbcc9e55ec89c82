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
    """One instance's log files, read in order from an open file through every rotation.

    The file being read is held open, so renames do not move it. When its name has passed to
    a newer file (a rotation), it is read to its end once more (lines written between the last
    read and the rotation), then the file rotated in right after it is opened: with numbered
    backups (`name.log.1` newest, `name.log.<backups>` oldest, each rotation shifting them up),
    that is the nearest newer name, `name.log.<k-1>` for a file now at `name.log.<k>`, and
    `name.log` after `name.log.1`. However many rotations happen between two looks, each file
    is read whole and once, oldest first. A file rotated away beyond `backups` before it was
    reached is gone; reading goes on from the oldest one left.
    """

    def __init__(self, path: Path, instance: int, handle: BinaryIO) -> None:
        self.path = path
        self.instance = instance
        self.handle = handle
        self.partial = b""
        self.last_key = _EPOCH

    @classmethod
    def open(cls, path: Path, instance: int, cutoff: str | None = None) -> _Follower | None:
        """A follower from the oldest of the files of `path` not older than `cutoff` (by
        modification time; the current file in any case); None when there is no file."""
        for _ in range(_LOOKS):
            files = _files(path)
            if not files:
                return None
            start = next((i for i, (name, _) in enumerate(files)
                          if cutoff is None or not _modified_before(name, cutoff)), len(files) - 1)
            handle = _open_same(*files[start])
            if handle is not None:
                return cls(path, instance, handle)
        return None

    def lines(self) -> Iterator[_Raw]:
        """The lines written since the last call, through any rotations since, as read."""
        while True:
            if os.fstat(self.handle.fileno()).st_size < self.handle.tell():
                self.handle.seek(0)  # truncated in place (copytruncate): read it from the start
                self.partial = b""
            yield from self._drain()
            if self._is_current():
                return
            newer = self._next_file()
            if newer is None:  # rotated, but the file after it is not there yet
                return
            yield from self._drain()  # written before the rotation, after the read above
            if self.partial:  # a last line without its line end
                yield self._raw(self.partial)
                self.partial = b""
            self.handle.close()
            self.handle = newer

    def read_new(self) -> list[_Raw]:
        """Complete lines written since the last call, through any rotations since."""
        return list(self.lines())

    def _drain(self) -> Iterator[_Raw]:
        while chunk := self.handle.read(_CHUNK):
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            for line in complete:
                yield self._raw(line)

    def _raw(self, line: bytes) -> _Raw:
        text = line.decode("utf-8", "replace")
        self.last_key = text[:_STAMP_WIDTH] if _LINE.match(text) else self.last_key
        return _Raw(self.last_key, self.instance, text)

    def _is_current(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:  # between a rotation's rename and the new file
            return False

    def _next_file(self) -> BinaryIO | None:
        """The file rotated in right after the one being read, opened; None if none yet.

        Names shift while a rotation renames the files one by one, so the file chosen is
        opened only if it is still under the name it was seen under, and kept only if a look
        taken after opening it still shows it right after ours.
        """
        ours = os.fstat(self.handle.fileno()).st_ino
        for _ in range(_LOOKS):
            newer = _after(_files(self.path), ours)
            if not newer:
                return None
            handle = _open_same(*newer[0])
            if handle is None:
                continue
            again = _after(_files(self.path), ours)
            if again and again[0][1] == newer[0][1]:
                return handle
            handle.close()
        return None

    def close(self) -> None:
        self.handle.close()


_CHUNK = 1024 * 1024
_LOOKS = 20  # looks at the directory before giving up until the next poll (names shifting)


def _files(path: Path) -> list[tuple[Path, int]]:
    """The files of one instance's log `path` (rotated ones oldest first, then `path`) with
    their inodes, as two looks in a row agree on them: a rotation renames files one by one."""
    previous: list[tuple[Path, int]] | None = None
    for _ in range(_LOOKS):
        found = _look(path)
        if found == previous:
            break
        previous = found
    return found


def _look(path: Path) -> list[tuple[Path, int]]:
    pattern = re.compile(rf"^{re.escape(path.name)}(?:\.(\d+))?$")
    ages = []
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.match(name)
        if match:
            ages.append((int(match.group(1) or 0), path.parent / name))
    found = []
    for _, file in sorted(ages, key=lambda item: -item[0]):
        try:
            found.append((file, os.stat(file).st_ino))
        except FileNotFoundError:  # renamed meanwhile: the next look sees where
            continue
    return found


def _after(files: list[tuple[Path, int]], inode: int) -> list[tuple[Path, int]]:
    """The files newer than the file `inode`; all of them if it is gone (rotated away
    beyond the backups kept, or deleted)."""
    inodes = [found for _, found in files]
    return files[inodes.index(inode) + 1:] if inode in inodes else files


def _open_same(path: Path, inode: int) -> BinaryIO | None:
    """`path` opened if it is still the file `inode`, else None."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    if os.fstat(handle.fileno()).st_ino != inode:
        handle.close()
        return None
    return handle


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
    """Every instance's lines merged by time, each read by its follower from its oldest file
    (not older than `cutoff`) on: the same reading then goes on with what is written next."""
    streams = []
    for instance in instance_files(log_dir, service):
        follower = _Follower.open(log_path(log_dir, service, instance), instance, cutoff)
        if follower is not None:
            followers[instance] = follower
            streams.append(follower.lines())
    merged = heapq.merge(*streams, key=lambda raw: raw.key)
    return (raw for raw in merged if cutoff is None or raw.key >= cutoff)


def _new_lines(log_dir: Path, service: str, followers: dict[int, _Follower]) -> list[LogLine]:
    """Lines written since the last look, by time; picks up instances that appeared meanwhile,
    from their oldest file."""
    for instance in instance_files(log_dir, service):
        if instance not in followers:
            follower = _Follower.open(log_path(log_dir, service, instance), instance)
            if follower is not None:
                followers[instance] = follower
    raws = [raw for follower in followers.values() for raw in follower.read_new()]
    raws.sort(key=lambda raw: raw.key)
    return [_parse(raw, service) for raw in raws]
