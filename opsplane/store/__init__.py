"""The store: SQLAlchemy 2 tables of every domain, Alembic migrations, SQLite or PostgreSQL."""

from opsplane.store.db import Store, default_url

__all__ = ["Store", "default_url"]
