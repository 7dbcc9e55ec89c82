"""On call: schedules with weekly rotations, overrides and swaps, handoff notes, escalation policies."""
