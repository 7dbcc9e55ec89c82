"""Waiting on a real process or server: poll a condition until it holds or time runs out."""

from __future__ import annotations

import asyncio
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


async def wait_for_async(condition: Callable[[], Any], what: str = "the condition", timeout: float = 20.0,
                         interval: float = 0.02) -> Any:
    """`wait_for` for a test whose event loop must keep running meanwhile (the code it waits
    on runs in that loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what} within {timeout:g} s (last: {value!r})")
        await asyncio.sleep(interval)
