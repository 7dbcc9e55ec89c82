"""Backups: when they run, which are kept, and whether the copies meet 3-2-1 and the RPO."""
