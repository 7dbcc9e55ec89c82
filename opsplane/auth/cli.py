"""`opsplane token create|list|revoke`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Table

from opsplane.auth import service
from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.types import parse_duration
from opsplane.errors import UsageError
from opsplane.timefmt import parse_time

app = typer.Typer(no_args_is_help=True)


@app.command()
def create(
    role: Role = typer.Option(..., "--role", help="viewer, responder, operator or admin."),
    name: str = typer.Option(None, "--name", help="A name to recognise it by (default: role-N)."),
    expires: str = typer.Option(
        None, "--expires", help="When it stops working: after a duration (90d, 12h) or at a date or "
        "time (2027-03-01, 2027-03-01T12:00Z; UTC unless it says otherwise). Default: never."),
    json_out: bool = typer.Option(False, "--json", help="Print the token as JSON."),
) -> None:
    """Create an API token. It is shown once; only its hash is stored."""
    actor = acting_as(Role.ADMIN)
    clock = SystemClock()
    expires_at = _expiry(expires, clock.now()) if expires is not None else None
    store = open_store(create=True)
    with store.session() as session:
        if name is None:
            name = f"{role.value}-{len(service.get_all(session, include_revoked=True)) + 1}"
        token = service.create(session, name=name, role=role, actor=actor, clock=clock,
                               expires_at=expires_at)
    if json_out:
        print_json({"name": name, "role": role.value, "token": token,
                    "expires_at": expires_at.isoformat() if expires_at else None})
    else:
        until = f", valid until {_t(expires_at)} UTC" if expires_at else ""
        out.print(f"Created {role.value} token [bold]{name}[/]{until}. It is shown only this once:\n")
        out.print(token)


def _expiry(text: str, now: datetime) -> datetime:
    """`--expires`: a duration from now, or a date or time."""
    try:
        return now + timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        return parse_time(text).astimezone(UTC)
    except ValueError:
        raise UsageError(f"--expires: cannot read {text!r}; give a duration such as 90d or 12h, "
                         "or a date or time such as 2027-03-01 or 2027-03-01T12:00Z") from None


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List tokens (names, roles, use), never their values."""
    store = open_store()
    now = SystemClock().now()
    with store.session() as session:
        rows = service.get_all(session, include_revoked=all_)
        data: list[dict[str, Any]] = [
            {"name": r.name, "role": r.role, "prefix": r.prefix, "created_at": r.created_at,
             "created_by": r.created_by, "last_used_at": r.last_used_at,
             "revoked_at": r.revoked_at, "expires_at": r.expires_at,
             "expired": r.expires_at is not None and r.expires_at <= now}
            for r in rows
        ]
    if json_out:
        print_json(data)
        return
    table = Table("NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
    for r in data:
        expiry = _t(r["expires_at"]) + (" (expired)" if r["expired"] else "")
        table.add_row(r["name"], r["role"], r["prefix"] + "…", _t(r["created_at"]),
                      _t(r["last_used_at"]), expiry, _t(r["revoked_at"]))
    out.print(table)


@app.command()
def revoke(name: str = typer.Argument(..., help="Token name.")) -> None:
    """Revoke a token; requests with it are refused from now on."""
    actor = acting_as(Role.ADMIN)
    store = open_store(create=True)
    with store.session() as session:
        service.revoke(session, name=name, actor=actor)
    out.print(f"Revoked token {name}.")


def _t(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"  # type: ignore[attr-defined]
