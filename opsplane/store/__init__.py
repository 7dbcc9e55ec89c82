"""The store: SQLAlchemy 2 tables of every domain, Alembic migrations, SQLite or PostgreSQL."""

from opsplane.store.db import NoStoreYet, Store, default_url

__all__ = ["NoStoreYet", "Store", "default_url"]
