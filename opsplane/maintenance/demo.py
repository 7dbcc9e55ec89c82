"""What the demo adds for database care: pg_stat_statements loaded in its PostgreSQL, and a
PgBouncer between the shop and PostgreSQL with a `pgbouncer` check on the database.

`opsplane demo` (demo/stack.py) calls these; each leaves its part out with a note when what it
needs is not installed, and the shop then connects to PostgreSQL directly."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.postgres import TemporaryPostgres, find_postgres_bindir

# The shop's services keep up to 5 connections each (catalog and orders); the pool is smaller
# than their sum, so PgBouncer's figures move under the traffic. SHOW STATS every 10 s.
POOL_SETTINGS = {"default_pool_size": "8", "max_client_conn": "200", "stats_period": "10"}
ADMIN_USER = "pgbouncer"
PASSWORD_FILE = "pgbouncer-password"


def statements_library() -> bool:
    """Whether the PostgreSQL the demo runs has pg_stat_statements (postgresql-contrib)."""
    try:
        bindir = find_postgres_bindir()
    except SandboxError:
        return False
    libdir = bindir.parent / "lib"
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        found = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            libdir = Path(found.stdout.strip())
    return (libdir / "pg_stat_statements.so").is_file()


def statements_settings(notes: list[str]) -> dict[str, str]:
    """The server settings that load pg_stat_statements; none, with a note, without it."""
    if statements_library():
        return {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "top"}
    notes.append("pg_stat_statements is not installed: `opsplane db report` shows no slow queries "
                 "(install postgresql-contrib; scripts/bootstrap.sh does)")
    return {}


def create_statements(postgres: TemporaryPostgres, database: str) -> None:
    """CREATE EXTENSION pg_stat_statements in `database`, when the server loaded it."""
    loaded = postgres.execute("SHOW shared_preload_libraries")[0][0]
    if "pg_stat_statements" in str(loaded):
        postgres.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database=database)


def start_pgbouncer(base: Path, postgres: TemporaryPostgres, database: str,
                    notes: list[str]) -> TemporaryPgBouncer | None:
    """A PgBouncer in front of `database`, its admin password written to `base/secrets`; None,
    with a note, when it is not installed or does not start."""
    assert postgres.password is not None
    admin_password = secrets.token_urlsafe(18)
    backend = Backend(postgres.host, postgres.port, database)
    bouncer = TemporaryPgBouncer(base / "pgbouncer", {database: backend},
                                 users={postgres.user: postgres.password, ADMIN_USER: admin_password},
                                 admin_user=ADMIN_USER, auth_type="md5", settings=POOL_SETTINGS)
    try:
        bouncer.start()
    except SandboxError as exc:
        notes.append(f"PgBouncer left out, the shop connects to PostgreSQL directly: {exc}")
        return None
    path = base / "secrets" / PASSWORD_FILE
    path.touch(mode=0o600)
    path.write_text(admin_password + "\n")
    return bouncer


def database_url(bouncer: TemporaryPgBouncer, postgres: TemporaryPostgres, database: str) -> str:
    """The shop's database URL through PgBouncer."""
    from urllib.parse import quote

    assert postgres.password is not None
    return (f"postgresql://{postgres.user}:{quote(postgres.password, safe='')}@{bouncer.host}:{bouncer.port}/"
            f"{database}")


def check_yaml(bouncer: TemporaryPgBouncer, secrets_dir: Path, database: str) -> str:
    """The `pgbouncer` check of the demo's database, as one line of its checks list."""
    return (f"{{type: pgbouncer, port: {bouncer.port}, admin_user: {ADMIN_USER}, "
            f"password: file:{secrets_dir / PASSWORD_FILE}, database: {database}}}")
