"""Notifications: the message model, the persisted outbox and its dispatcher (docs/notifications.md)."""

# The channel models are a section of the inventory. Loading the inventory package first means
# `import opsplane.notify.models` on its own finds opsplane.config complete, not half-imported.
import opsplane.config.models  # noqa: F401
