"""The console: one line per notification on the control plane's output, for a first run."""

from __future__ import annotations

import sys
from typing import TextIO

from opsplane.drivers.channels.base import Outcome, SendResult
from opsplane.notify.models import Notification


def format_console(notification: Notification) -> str:
    n = notification
    line = f"{n.title()} (group {n.group})"
    if n.runbook:
        line += f" runbook: {n.runbook}"
    if n.details and n.digest_of:
        line += "\n" + n.details
    return line


class ConsoleDriver:
    def __init__(self, name: str, *, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def send(self, notification: Notification) -> SendResult:
        stream = self._stream or sys.stderr
        try:
            stream.write(format_console(notification) + "\n")
            stream.flush()
        except OSError as exc:
            return SendResult(Outcome.RETRY, f"cannot write: {exc.strerror}")
        return SendResult(Outcome.DELIVERED, "written")

    def close(self) -> None:
        pass
