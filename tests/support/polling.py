"""Waiting on a real process or server: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], what: str = "the condition", timeout: float = 20.0,
             interval: float = 0.05) -> Any:
    """The first truthy value of `condition()`; AssertionError naming `what` (and the last
    value seen) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} within {timeout:g} s (last: {value!r})")
        time.sleep(interval)
