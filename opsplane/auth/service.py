"""API tokens: created once, shown once, stored as SHA-256, checked by role."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsplane.auth.tables import ApiToken
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
    session: Session, *, name: str, role: Role, actor: str, clock: Clock = _system_clock
) -> str:
    """Create a token and return its secret value; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role.value,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 4],
        created_at=clock.now(),
        created_by=actor,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise UsageError(f"a token named {name!r} already exists; choose another name") from None
    record(session, kind="token.created", actor=actor, target=f"token:{name}",
           outcome="success", details={"role": role.value}, clock=clock)
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
    record(session, kind="token.revoked", actor=actor, target=f"token:{name}",
           outcome="success", details={"role": row.role}, clock=clock)


def authenticate(session: Session, *, token: str, clock: Clock = _system_clock) -> Principal:
    """The principal holding `token`; raises AuthError when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("malformed token")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked token")
    now = clock.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(name=row.name, role=Role(row.role))
