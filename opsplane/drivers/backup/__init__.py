"""Backup engines opsplane drives: pgBackRest, pg_dump/pg_restore, restic (Redis snapshots,
file trees, opsplane's own store). Each module wraps one engine's commands; `base.py` holds the
values they share and `command.py` the one way they run a program."""
