"""Database care: the PostgreSQL report, its actions, and PgBouncer pool advice (docs/maintenance.md)."""
