"""`opsplane db upgrade|current`."""

from __future__ import annotations

import typer

from opsplane.cli_support import out
from opsplane.store import Store

app = typer.Typer(no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the store's migrations (also done automatically whenever the store opens)."""
    store = Store.open(migrate=False)
    store.upgrade(revision)
    out.print(f"{store.url}: at revision {store.current_revision()}")


@app.command()
def current() -> None:
    """Where the store is and which migration it is at; exit code 3 when there is none yet."""
    store = Store.open(migrate=False, create=False)
    out.print(f"{store.url}: at revision {store.current_revision() or '(empty)'}")
