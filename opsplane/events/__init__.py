"""The event log: an append-only record of every state change and every action."""

# Every new Event is chained when its session flushes: the package registers the hook, so
# that whatever imports the events table, and so whatever way an event is added, has it.
from opsplane.events import append as _append  # noqa: F401
