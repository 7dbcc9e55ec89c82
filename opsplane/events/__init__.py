"""The event log: an append-only record of every state change and every action."""
