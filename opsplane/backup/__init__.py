"""Backups and disaster recovery: policy, catalog, runs, verification, restores and drills."""
