"""Runbooks as code: files of steps that opsplane runs, each step recorded (docs/runbooks.md)."""
