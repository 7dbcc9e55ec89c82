"""API tokens: created once, shown once, stored as SHA-256, checked by role, refused once
revoked or past their expiry (if they have one)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsplane.auth.tables import ApiToken, DashboardSession
from opsplane.clock import Clock, SystemClock
from opsplane.errors import AuthError, UsageError
from opsplane.events.service import record

TOKEN_PREFIX = "ops_"
_system_clock = SystemClock()
# Writing last_used_at on every request would turn reads into writes; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when a holder of this role may do what `needed` guards."""
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    session: Session, *, name: str, role: Role, actor: str, clock: Clock = _system_clock,
    expires_at: datetime | None = None,
) -> str:
    """Create a token and return its secret value; only its hash is stored. A token with
    `expires_at` is refused from that time on; one without never expires."""
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise UsageError(f"the expiry {expires_at.isoformat()} is not in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role.value,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 4],
        created_at=now,
        created_by=actor,
        expires_at=expires_at,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise UsageError(f"a token named {name!r} already exists; choose another name") from None
    details = {"role": role.value}
    if expires_at is not None:
        details["expires_at"] = expires_at.isoformat()
    record(session, kind="token.created", actor=actor, target=f"token:{name}",
           outcome="success", details=details, clock=clock)
    return token


def get_all(session: Session, *, include_revoked: bool = False) -> Sequence[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return session.scalars(query).all()


def revoke(session: Session, *, name: str, actor: str, clock: Clock = _system_clock) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None or row.revoked_at is not None:
        raise UsageError(f"no active token named {name!r}; `opsplane token list` shows them")
    row.revoked_at = clock.now()
    # the dashboard sessions signed in with it end with it
    session.execute(delete(DashboardSession).where(DashboardSession.token_id == row.id))
    record(session, kind="token.revoked", actor=actor, target=f"token:{name}",
           outcome="success", details={"role": row.role}, clock=clock)


def authenticate(session: Session, *, token: str, clock: Clock = _system_clock) -> Principal:
    """The principal holding `token`; raises AuthError when it is unknown, revoked or expired."""
    return principal(active_token(session, token=token, now=clock.now()))


def active_token(session: Session, *, token: str, now: datetime) -> ApiToken:
    """The row of `token`, its last use noted; AuthError saying why when it may not be used."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("malformed token")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked token")
    check_usable(row, now)
    note_use(row, now)
    return row


def check_usable(row: ApiToken, now: datetime) -> None:
    """AuthError when the token is revoked or past its expiry."""
    if row.revoked_at is not None:
        raise AuthError(f"token {row.name!r} was revoked")
    if row.expires_at is not None and now >= row.expires_at:
        raise AuthError(f"token {row.name!r} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; "
                        "ask an admin for a new one (`opsplane token create`)")


def note_use(row: ApiToken, now: datetime) -> None:
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now


def principal(row: ApiToken) -> Principal:
    return Principal(name=row.name, role=Role(row.role))
