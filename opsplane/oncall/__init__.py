"""On call: schedules with weekly rotations, overrides and swaps, handoff notes, escalation policies."""

# The on-call models are a section of the inventory and use its value types. Loading the
# inventory package first means `import opsplane.oncall.models` on its own finds
# opsplane.config complete instead of half-imported.
import opsplane.config.models  # noqa: F401
