"""Notifications: the message model, the persisted outbox and its dispatcher (docs/notifications.md)."""
