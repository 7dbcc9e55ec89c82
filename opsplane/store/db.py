"""Opening the store: the engine, SQLite pragmas, sessions and migrations."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from opsplane.errors import StoreError

DEFAULT_SQLITE = Path(".opsplane") / "opsplane.db"
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Opening a store that is already there skips Alembic altogether
# (about 8 MB of imports and a scan of the migration scripts); a test keeps this in step
# with migrations/versions.
HEAD_REVISION = "0006"
_MIGRATION_LOCK = 0x6F70_7370_6D69_6772  # "opspmigr": the advisory lock key of migrations


def default_url(environ: Mapping[str, str] | None = None, *, base: Path | None = None) -> str:
    """OPSPLANE_DATABASE_URL when set, else SQLite at .opsplane/opsplane.db under `base`."""
    env = os.environ if environ is None else environ
    if url := env.get("OPSPLANE_DATABASE_URL"):
        return url
    path = (base or Path.cwd()) / DEFAULT_SQLITE
    return f"sqlite:///{path}"


def _normalise(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// URLs mean it.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """A handle on the database: `session()` for work, `upgrade()` for migrations."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        """Open the store at `url` (default: see default_url) and bring its schema up to date."""
        url = _normalise(url or default_url())
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate and store._stamped_revision() != HEAD_REVISION:
            # Several processes may open a new store at once (`opsplane up` and `serve`, say):
            # one migrates, the others wait and then find it done.
            with store._migration_lock():
                if store._stamped_revision() != HEAD_REVISION:
                    store.upgrade()
        return store

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Held while migrating: a lock file beside a SQLite database, an advisory lock on
        PostgreSQL."""
        if self.engine.dialect.name == "postgresql":
            try:
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
                    try:
                        yield
                    finally:
                        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            except OperationalError as exc:
                raise StoreError(f"cannot open the store at {self.url}: {exc.orig}") from None
            return
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back otherwise."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision`; raises StoreError if the database is unreachable."""
        from alembic import command

        try:
            with self.engine.begin() as connection:
                if self.engine.dialect.name == "sqlite":
                    # The sqlite3 module runs DDL outside any transaction unless one is open,
                    # so a migration cut off half-way (a crash, a kill) would leave tables
                    # without the revision that made them. Opened explicitly, the whole
                    # upgrade commits or rolls back as one.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                config = alembic_config(connection)
                command.upgrade(config, revision)
        except OperationalError as exc:
            raise StoreError(f"cannot open the store at {self.url}: {exc.orig}") from None

    def _stamped_revision(self) -> str | None:
        """The revision recorded in alembic_version, read with plain SQL; None when there is
        none yet or it cannot be read (upgrade() then says why)."""
        try:
            with self.engine.connect() as connection:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            return None

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def close(self) -> None:
        self.engine.dispose()


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
