"""Alembic environment: migrations run on the connection opsplane hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from opsplane.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # `alembic revision --autogenerate` from a shell: use the URL given with -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///.opsplane/opsplane.db")
    with create_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
