"""Opening the store: the engine, SQLite pragmas, sessions and migrations."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from opsplane.errors import StoreError, StorePlaceError, UsageError

DEFAULT_SQLITE = Path(".opsplane") / "opsplane.db"
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Opening a store that is already there skips Alembic altogether
# (about 8 MB of imports and a scan of the migration scripts); a test keeps this in step
# with migrations/versions.
HEAD_REVISION = "0018"
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


class NoStoreYet(UsageError):
    """A command that only reads found no store where it looked; nothing was created."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"no store yet at {where}: nothing has been recorded there. Run the command where "
            "`opsplane serve` (or the demo) keeps its store, set OPSPLANE_DATABASE_URL to it, "
            "or create an empty one with `opsplane db upgrade`."
        )
        self.where = where


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory one or another database."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _check_place(file: Path) -> None:
    """StorePlaceError unless the directory of a SQLite store exists (it is made if not) and
    this process may write in it: SQLite keeps its write-ahead log and shared memory beside
    the database, and migrations their lock file, so a store cannot be written otherwise.
    Tried by making a file there, which is what counts (a read-only file system stops root
    too; permissions alone would not)."""
    directory = file.parent
    said = f"cannot open the store at {file}"
    hint = ("run opsplane as a user that may write there, or set OPSPLANE_DATABASE_URL to a "
            "store elsewhere (sqlite:////var/lib/opsplane/opsplane.db)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorePlaceError(f"{said}: cannot create the directory {directory}: "
                              f"{exc.strerror or exc}; {hint}") from None
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise StorePlaceError(f"{said}: the directory {directory} is not writable ({exc.strerror or exc}): "
                              f"SQLite writes its journal beside the database; {hint}") from None
    if file.exists() and not os.access(file, os.W_OK):
        raise StorePlaceError(f"{said}: the file is not writable; {hint}")


class Store:
    """A handle on the database: `session()` for work, `upgrade()` for migrations."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str | None = None, *, migrate: bool = True, create: bool = True
    ) -> Store:
        """Open the store at `url` (default: see default_url) and bring its schema up to date.

        With `create=False` (commands that only read) a store that is not there yet (no
        SQLite file, or a database without opsplane's tables) is not made: NoStoreYet says
        where it was looked for, and nothing is written.
        """
        url = _normalise(url or default_url())
        # An error names its statement, never its parameters: they may hold secrets or a
        # sender's megabytes, and errors are logged.
        kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
        file = sqlite_file(url)
        if file is not None and not create and not file.exists():
            raise NoStoreYet(str(file))
        if url.startswith("sqlite"):
            if file is not None and create:
                _check_place(file)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if not create:
            store._require_schema(str(file) if file is not None else store.url)
        if migrate and store._stamped_revision() != HEAD_REVISION:
            # Several processes may open a new store at once (`opsplane up` and `serve`, say):
            # one migrates, the others wait and then find it done.
            with store._migration_lock():
                if store._stamped_revision() != HEAD_REVISION:
                    store.upgrade()
        return store

    def _require_schema(self, where: str) -> None:
        """NoStoreYet when the database holds no opsplane store; StoreError when it cannot
        be reached at all (a server that is down is not an empty store)."""
        try:
            with self.engine.connect() as connection:
                present = inspect(connection).has_table("alembic_version")
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the store at {self.url}: {exc.orig}") from None
        if not present:
            self.engine.dispose()
            raise NoStoreYet(where)

    @classmethod
    def open_migrated_apart(cls, url: str | None = None) -> Store:
        """`open`, with the migrations (if any are due) applied by a child process
        (`opsplane.store.migrate`): for `serve`, which would otherwise carry their imports
        for as long as it runs. Raises StoreError with the child's reason if it fails."""
        url = url or default_url()
        store = cls.open(url, migrate=False)
        if store._stamped_revision() == HEAD_REVISION:
            return store
        run = subprocess.run([sys.executable, "-m", "opsplane.store.migrate"],
                             env={**os.environ, "OPSPLANE_DATABASE_URL": url},
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            store.close()
            said = run.stderr.strip()
            if run.returncode in (2, 3) and said:  # the child's StoreError, as Store.open says it
                raise (StorePlaceError if run.returncode == 3 else StoreError)(said)
            last = said.splitlines()[-1] if said else f"exit status {run.returncode}"
            raise StoreError(f"migrating the store at {store.url} failed: {last}")
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
        try:
            lock = open(f"{database}.migrate-lock", "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise StorePlaceError(f"cannot open the store at {database}: cannot create its migration "
                                  f"lock {database}.migrate-lock: {exc.strerror or exc}") from None
        with lock:
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
