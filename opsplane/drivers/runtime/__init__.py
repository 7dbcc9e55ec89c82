"""Runtime drivers: what runs the inventory's components (`process` today; `compose` and
`kubernetes` behind the same `RuntimeDriver` interface later)."""

from opsplane.drivers.runtime.base import (
    InstanceState,
    InstanceStatus,
    LogLine,
    RuntimeDriver,
    RuntimeFailure,
    RuntimeNotice,
    RuntimeNotRunning,
    RuntimeWatch,
)
from opsplane.drivers.runtime.factory import open_runtime, watched_runtime

__all__ = [
    "InstanceState",
    "InstanceStatus",
    "LogLine",
    "RuntimeDriver",
    "RuntimeFailure",
    "RuntimeNotRunning",
    "RuntimeNotice",
    "RuntimeWatch",
    "open_runtime",
    "watched_runtime",
]
