"""What every domain's commands share: the inventory chosen by the root's -c/--config, the
store, the acting user, JSON and table output, the error console. The root command
(`opsplane.cli`) mounts the domains' commands; they take what they share from here, never from
it."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions

from opsplane.auth.service import Role
from opsplane.store import Store


class _Output(Console):
    """Standard output, sized when a table is drawn: COLUMNS when it is set, else the terminal's
    width, or 160 columns when the output goes to a file or a log, where 80 would squeeze it."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(160, measured.height)
        return measured

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Output(highlight=False, soft_wrap=True)
err = Console(stderr=True)

DEFAULT_INVENTORY = Path("opsplane.yaml")


def config_path(ctx: typer.Context) -> Path:
    """The inventory path chosen by --config, OPSPLANE_CONFIG or the default."""
    root = ctx.find_root()
    return (root.obj or {}).get("config") or DEFAULT_INVENTORY


def load_inventory(ctx: typer.Context) -> tuple[Any, Path]:
    """The inventory a command works on (ConfigError, exit 3, when it is invalid) and the
    directory its relative paths start from."""
    from opsplane.config.loader import load

    path = config_path(ctx)
    return load(path), path.resolve().parent


def cli_actor() -> str:
    """The event log's actor for a command run by a person: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


LOCAL_ROLE_ENV = "OPSPLANE_LOCAL_ROLE"
TOKEN_ENV = "OPSPLANE_TOKEN"


def acting_as(role: Role) -> str:
    """The actor of a command that changes something and needs `role` (docs/decisions/0012):
    the token in OPSPLANE_TOKEN when one is set, checked against the store, else the local
    user with the role OPSPLANE_LOCAL_ROLE names (admin unless set: whoever can open the store
    can change it anyway). A role that falls short is refused with exit code 3."""
    from opsplane.auth.service import AuthError, authenticate
    from opsplane.errors import UsageError

    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        store = open_store()  # a token can only be checked against a store that exists
        try:
            with store.session() as session:
                principal = authenticate(session, token=token)
        except AuthError as exc:
            raise UsageError(f"{TOKEN_ENV}: {exc}; unset it to act as the local user") from None
        finally:
            store.close()
        actor, held, source = principal.actor, principal.role, f"token {principal.name!r}"
    else:
        named = os.environ.get(LOCAL_ROLE_ENV, Role.ADMIN.value).strip().lower()
        try:
            held = Role(named)
        except ValueError:
            raise UsageError(f"{LOCAL_ROLE_ENV}={named!r}: expected one of "
                             f"{', '.join(r.value for r in Role)}") from None
        actor, source = cli_actor(), f"{cli_actor()} ({LOCAL_ROLE_ENV})"
    if not held.allows(role):
        raise UsageError(f"this command needs the {role.value} role; {source} has {held.value}. "
                         f"Set {TOKEN_ENV} to a token with that role.")
    return actor


def open_store(*, create: bool = False) -> Store:
    """The store a command works on (OPSPLANE_DATABASE_URL, else .opsplane/opsplane.db here).

    A command that only reads passes nothing: where there is no store yet it stops with
    NoStoreYet (exit code 3, naming where it looked) and leaves the directory as it found
    it. A command that records something passes `create=True` and makes the store if needed.
    """
    return Store.open(create=create)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def parse_when(text: str | None, now: datetime) -> datetime | None:
    """A time from an ISO 8601 timestamp or an age ('15m', '24h', '7d' meaning that long ago)."""
    if text is None:
        return None
    from datetime import timedelta

    from opsplane.config.types import parse_duration
    from opsplane.errors import UsageError
    from opsplane.timefmt import parse_time

    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: give an age such as 15m, 24h, 7d or an ISO 8601 time"
        ) from None


def exit_zero_on_sigterm() -> None:
    """Make SIGTERM end the process with exit code 0 by way of SystemExit, so `finally`
    blocks run. (uvicorn re-raises the signal it caught once it has shut down; with the
    default handler that would kill the process before our own clean-up.)"""
    import signal

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
