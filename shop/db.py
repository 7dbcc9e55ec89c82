"""The shop database: tables, the engine and its pool, schema creation that several
processes can run at once, the catalog seeded once, and the schema changes that releases
apply at start (`MIGRATIONS`).

Work runs as plain functions over a Connection, in worker threads (`Database.run`), limited
to as many at once as the pool has connections, so waiting happens in the event loop
rather than in blocked threads.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shop.faults import FaultInjector
from shop.products import generate_products

log = logging.getLogger("shop.db")
T = TypeVar("T")

metadata = sa.MetaData()

products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(64), nullable=False, index=True),
    sa.Column("price_cents", sa.Integer, nullable=False),
)

carts = sa.Table(
    "carts", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # open -> checking_out -> ordered; back to open when the payment fails
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

cart_items = sa.Table(
    "cart_items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cart_id", sa.String(32), sa.ForeignKey("carts.id"), nullable=False, index=True),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price_cents", sa.Integer, nullable=False),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("cart_id", sa.String(32), sa.ForeignKey("carts.id"), nullable=False, index=True),
    # pending -> completed | payment_failed | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total_cents", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payment_id", sa.String(64)),
    sa.Column("failure_reason", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Any constant works; it only has to be the same in every shop process.
_SCHEMA_LOCK_KEY = 0x5_4F_50_00


class DependencyUnavailable(Exception):
    """A dependency (database, cache, a downstream service) cannot be used right now."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


def create_engine(url: str, *, pool_size: int, max_overflow: int) -> Engine:
    """An engine with a QueuePool of `pool_size` (+ `max_overflow`) connections."""
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, poolclass=sa.QueuePool, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=10,
            connect_args={"timeout": 15, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No server-side prepared statements: the shop may reach PostgreSQL through PgBouncer's
    # transaction pooling, where the next transaction may run on another server connection.
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=10, pool_pre_ping=False,
        pool_recycle=1800, connect_args={"connect_timeout": 3, "prepare_threshold": None},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets catalog reads go on while orders write; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the shop-wide schema lock until it ends."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            yield conn
        return
    database = engine.url.database or ""
    lock_path = Path(f"{database}.schema-lock") if database and database != ":memory:" else None
    if lock_path is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_schema(engine: Engine) -> None:
    """Create missing tables and seed an empty catalog, under a lock so that services starting
    together against one database do not race."""
    with _schema_lock(engine) as conn:
        metadata.create_all(conn, checkfirst=True)
        if conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one() == 0:
            conn.execute(products.insert(), generate_products())
            log.info("seeded the catalog")


def ensure_schema_with_retry(engine: Engine, timeout: float = 30.0) -> None:
    """ensure_schema, retried while the database is not reachable yet (it may start after us)."""
    deadline = time.monotonic() + timeout
    said = 0.0  # when the wait was last logged: every 5 s, not on each try
    while True:
        try:
            ensure_schema(engine)
            return
        except sa.exc.OperationalError as exc:
            now = time.monotonic()
            if now > deadline:
                raise
            if now - said >= 5.0:
                log.warning("database not ready (%s), retrying", str(exc).splitlines()[0])
                said = now
            time.sleep(0.5)


@dataclass(frozen=True)
class Migration:
    """A schema change a release applies at start. `apply` runs under the schema lock, in one
    transaction, and returns whether it changed anything: a second start finds the change made
    and does nothing."""

    name: str
    description: str
    apply: Callable[[Connection], bool]


class MigrationFailed(Exception):
    """A migration's statements failed; the schema is as it was before."""

    def __init__(self, migration: Migration, reason: str) -> None:
        super().__init__(f"migration {migration.name} ({migration.description}) failed: {reason}")
        self.migration = migration
        self.reason = reason


def _add_order_gift_note(conn: Connection) -> bool:
    # Additive: a nullable column that the older releases neither select (they name their
    # columns) nor write (it defaults to NULL).
    if "gift_note" in {column["name"] for column in sa.inspect(conn).get_columns("orders")}:
        return False
    conn.execute(sa.text("ALTER TABLE orders ADD COLUMN gift_note VARCHAR(200)"))
    return True


def _index_order_coupons(conn: Connection) -> bool:
    # orders has no coupon_code column: the statement fails on every database, every time.
    conn.execute(sa.text("CREATE INDEX orders_by_coupon ON orders (coupon_code)"))
    return True


MIGRATIONS: dict[str, Migration] = {m.name: m for m in (
    Migration("order_gift_note", "add the nullable column orders.gift_note", _add_order_gift_note),
    Migration("order_coupon_index", "index orders by coupon_code", _index_order_coupons),
)}


def migration_named(name: str | None) -> Migration | None:
    """The migration called `name` (a release's `migration`); None for None."""
    return None if name is None else MIGRATIONS[name]


def migrate(engine: Engine, migration: Migration) -> bool:
    """Apply `migration` under the schema lock; whether it changed the schema.

    Raises MigrationFailed with the database's first line of complaint when a statement fails;
    the transaction is rolled back, so the schema is left as it was."""
    try:
        with _schema_lock(engine) as conn:
            changed = migration.apply(conn)
    except sa.exc.DBAPIError as exc:
        raise MigrationFailed(migration, str(exc.orig or exc).splitlines()[0]) from exc
    if changed:
        log.info("migration %s applied: %s", migration.name, migration.description)
    return changed


class Database:
    """The engine plus the rules for using it from the event loop."""

    def __init__(self, engine: Engine, faults: FaultInjector) -> None:
        self.engine = engine
        # Same pool; each statement commits by itself, saving the BEGIN and COMMIT round trips.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._faults = faults
        pool = engine.pool
        self._limiter = anyio.CapacityLimiter(pool.size() + getattr(pool, "_max_overflow", 0))  # type: ignore[attr-defined]

    def pool_in_use(self) -> float:
        return float(self.engine.pool.checkedout())  # type: ignore[attr-defined]

    def pool_size(self) -> float:
        return float(self.engine.pool.size())  # type: ignore[attr-defined]

    async def run(self, work: Callable[..., T], *args: Any, atomic: bool = True) -> T:
        """`work(conn, *args)` in a worker thread: in one transaction, or with `atomic=False`
        each statement on its own (for reads and single writes, two round trips fewer).

        Raises DependencyUnavailable when the database is out (by fault) or unreachable."""
        if self._faults.is_out("database"):
            raise DependencyUnavailable("database", "outage injected by fault")
        call = functools.partial(self._transaction if atomic else self._statements, work, *args)
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as exc:
            raise DependencyUnavailable("database", str(exc).splitlines()[0][:200]) from exc

    def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        with self.engine.begin() as conn:
            return work(conn, *args)

    def _statements(self, work: Callable[..., T], *args: Any) -> T:
        with self._autocommit.connect() as conn:
            return work(conn, *args)

    async def ping(self) -> None:
        await self.run(lambda conn: conn.execute(sa.text("SELECT 1")), atomic=False)

    def dispose(self) -> None:
        self.engine.dispose()
