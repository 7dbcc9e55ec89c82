"""The console: each notification on the control plane's standard error, for a first run or a demo."""

from __future__ import annotations

import sys
from typing import TextIO

from opsplane.drivers.channels.base import Outcome, SendResult
from opsplane.notify.models import Notification


def format_console(notification: Notification) -> str:
    """The notification's headline, then its details indented beneath it: whom a page is for
    and how to acknowledge it, the alerts that fire, a digest's notifications."""
    n = notification
    line = f"{n.title()} (group {n.group})"
    if n.runbook:
        line += f" runbook: {n.runbook}"
    if n.details:
        line += "".join(f"\n    {part}" for part in n.details.splitlines())
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
