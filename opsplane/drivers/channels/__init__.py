"""Notification channels: pure formatting (a Notification to a request) apart from sending."""
