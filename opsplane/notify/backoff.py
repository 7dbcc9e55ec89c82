"""When to try a failed delivery again: exponential back-off with jitter, a pure function."""

from __future__ import annotations

from opsplane.notify.models import RetryPolicy


def retry_delay(attempt: int, policy: RetryPolicy, *, jitter: float,
                retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first).

    The wait doubles from `policy.first` up to `policy.max`; `jitter` (0 <= jitter < 1, from
    the dispatcher's random source) places it between half and all of that, so receivers
    that failed together are not hit together again ("equal jitter"). A receiver's
    Retry-After is honoured: the wait is never shorter than what it asked for.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    ceiling = min(policy.max, policy.first * 2.0 ** max(0, attempt - 1))
    delay = ceiling / 2 + jitter * ceiling / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
