"""Stored reports and the scheduled jobs that write them (docs/reports.md)."""
