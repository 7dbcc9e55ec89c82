"""An instance's log writer: a small process that copies the program's stdout and stderr into the
instance's log file, each line stamped with the UTC time it was read and its stream, and rotates
the file by size (and, given `daily`, at the first line of each new UTC day).

    python -I -S logwriter.py LOG_PATH MAX_BYTES BACKUPS STDOUT_FD STDERR_FD [daily]

The supervisor starts one for each run of an instance, in a session of its own, hands it the read
ends of the two pipes the program writes into and keeps no copy of them. The writer, not the
supervisor, is the pipes' reader, so an instance's output does not depend on the supervisor's life:
a supervisor killed with SIGKILL leaves its instances logging as before. The writer ends once both
pipes are closed, that is once the program and everything that inherited its output have exited.

It imports only the few modules of the standard library it needs (not even `typing` or
`pathlib`), so it starts in milliseconds and keeps about 4 MB of memory of its own; `logfiles`
reads what it writes.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from datetime import UTC, datetime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
LINE_LIMIT = 65536  # a longer line is cut into pieces
_CHUNK = 65536
_REOPEN_EVERY = 1.0  # seconds between attempts to open a log file that could not be opened


def stamp(ts: datetime) -> str:
    """`ts` as the fixed-width UTC prefix of a log line."""
    return ts.astimezone(UTC).strftime(STAMP)


def log_path(log_dir: Path, service: str, instance: int) -> Path:
    return log_dir / f"{service}.{instance}.log"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class RotatingLog:
    """Appends stamped lines to one instance's log file, rotating it at `max_bytes`, and with
    `daily` also before the first line of a new day (UTC): the file is renamed `.log.1` (older
    ones shift up, the one beyond `backups` is deleted) and a new one is opened. Only the
    instance's log writer writes the file, so renaming it loses nothing."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int, backups: int,
                 daily: bool = False) -> None:
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.daily = daily
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._file: BinaryIO = open(self.path, "ab")  # noqa: SIM115 - kept open across writes
        self._size = self._file.tell()
        # the day of the file's last line: a file written yesterday is rotated at today's first line
        self._day = datetime.fromtimestamp(os.fstat(self._file.fileno()).st_mtime, UTC).date() \
            if self._size else None

    def write(self, stream: str, text: str, ts: datetime) -> None:
        """One line; `text` without its line ending. Flushed at once so `logs -f` sees it."""
        day = ts.astimezone(UTC).date()
        if self.daily and self._size and self._day is not None and day != self._day:
            self.rotate()
        self._day = day
        data = f"{stamp(ts)} {stream} {text}\n".encode("utf-8", "replace")
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self._size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        """Shift name.log.N up by one (dropping the oldest) and start a new name.log."""
        self._file.close()
        if self.backups == 0:
            _remove(self.path)
        else:
            _remove(self._numbered(self.backups))
            for n in range(self.backups - 1, 0, -1):
                if os.path.exists(self._numbered(n)):
                    os.replace(self._numbered(n), self._numbered(n + 1))
            if os.path.exists(self.path):  # it may have been deleted by hand
                os.replace(self.path, self._numbered(1))
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across writes
        self._size = 0

    def _numbered(self, n: int) -> str:
        return f"{self.path}.{n}"

    def close(self) -> None:
        self._file.close()


class _Copier:
    """Lines from the program's pipes into the log; lines it cannot write are counted, never
    waited on: a program blocked on a full pipe would hang."""

    def __init__(self, path: str, max_bytes: int, backups: int, daily: bool = False) -> None:
        self.path, self.max_bytes, self.backups, self.daily = path, max_bytes, backups, daily
        self.log: RotatingLog | None = None
        self.lost = 0
        self._tried = 0.0

    def write(self, stream: str, lines: list[bytes]) -> None:
        now = datetime.now(UTC)
        try:
            log = self._open()
            for line in lines:
                log.write(stream, line.decode("utf-8", "replace").rstrip("\r"), now)
        except OSError as exc:
            self.lost += len(lines)
            if self.lost == len(lines):  # say it once, not for every line
                _say(f"cannot write {self.path}: {exc.strerror or exc}; dropping lines")

    def _open(self) -> RotatingLog:
        if self.log is None:
            if time.monotonic() - self._tried < _REOPEN_EVERY:
                raise OSError(f"{self.path} could not be opened")
            self._tried = time.monotonic()
            self.log = RotatingLog(self.path, max_bytes=self.max_bytes, backups=self.backups,
                                   daily=self.daily)
        return self.log

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.lost:
            _say(f"{self.lost} lines of {self.path} could not be written")


def copy(streams: dict[int, str], copier: _Copier) -> None:
    """Copy every stream (fd -> name) line by line until each is closed by the program's side."""
    poller = select.poll()
    partial: dict[int, bytes] = {}
    for fd in streams:
        poller.register(fd, select.POLLIN)
        partial[fd] = b""
    while partial:
        for fd, _ in poller.poll():
            chunk = os.read(fd, _CHUNK)
            if not chunk:  # every holder of the pipe's other end has closed it
                poller.unregister(fd)
                os.close(fd)
                if partial[fd]:
                    copier.write(streams[fd], [partial[fd]])
                del partial[fd]
                continue
            *lines, partial[fd] = (partial[fd] + chunk).split(b"\n")
            if len(partial[fd]) > LINE_LIMIT:  # a line without end: keep the log readable
                lines.append(partial[fd])
                partial[fd] = b""
            if lines:
                copier.write(streams[fd], lines)


def _say(message: str) -> None:
    sys.stderr.write(f"opsplane log writer {os.getpid()}: {message}\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    path, max_bytes, backups, stdout_fd, stderr_fd, *flags = argv
    for signum in (signal.SIGINT, signal.SIGHUP):  # its own session; only SIGTERM/SIGKILL end it early
        signal.signal(signum, signal.SIG_IGN)
    copier = _Copier(path, int(max_bytes), int(backups), daily="daily" in flags)
    try:
        copy({int(stdout_fd): "stdout", int(stderr_fd): "stderr"}, copier)
    finally:
        copier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
