"""Dashboard sessions: what a browser holds after signing in with a token.

Signing in checks the token once and starts a session: a random id goes into the browser's
cookie, and the store keeps only its SHA-256 with the token it was started with, that
token's name and role, the client's address, when it began and when it was last seen. Every
page resumes the session by the id: it is refused once it is signed out (the row is deleted),
unused for longer than the idle timeout, older than its lifetime, or once its token is revoked
(which deletes its sessions) or expired. The token itself never travels again after sign-in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from opsplane.auth.service import Principal, Role, active_token, check_usable, hash_token, note_use
from opsplane.auth.tables import ApiToken, DashboardSession
from opsplane.errors import AuthError
from opsplane.timefmt import span_words

# Writing last_seen_at on every page load would turn each view into a write; once a minute is
# enough for an idle timeout counted in hours.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lasts: `idle` without a page load, `lifetime` in all."""

    idle: timedelta = timedelta(hours=8)
    lifetime: timedelta = timedelta(hours=24)


def start(session: Session, *, token: str, client: str, now: datetime,
          policy: SessionPolicy) -> tuple[str, Principal]:
    """Check `token` and start a session for it: (the id for the cookie, who signed in).
    AuthError when the token may not be used. Sessions that have ended are cleared on the way."""
    row = active_token(session, token=token, now=now)
    session_id = secrets.token_urlsafe(32)
    session.add(DashboardSession(session_hash=hash_token(session_id), token_id=row.id,
                                 token_name=row.name, role=row.role, client=client[:100],
                                 created_at=now, last_seen_at=now))
    clear_ended(session, now=now, policy=policy)
    return session_id, Principal(name=row.name, role=Role(row.role))


def resume(session: Session, *, session_id: str, now: datetime, policy: SessionPolicy) -> Principal:
    """Who holds the session `session_id`; AuthError saying why when it has ended (and then
    its row is gone)."""
    found = session.execute(
        select(DashboardSession, ApiToken).join(ApiToken, ApiToken.id == DashboardSession.token_id)
        .where(DashboardSession.session_hash == hash_token(session_id))).first()
    if found is None:
        raise AuthError("signed out, or not a session of this control plane")
    row, token = found
    try:
        check_usable(token, now)
        if now - row.last_seen_at > policy.idle:
            raise AuthError(f"signed out after {span_words(policy.idle.total_seconds())} without use")
        if now - row.created_at > policy.lifetime:
            raise AuthError(f"signed out {span_words(policy.lifetime.total_seconds())} after signing in")
    except AuthError:
        session.delete(row)
        raise
    if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
        note_use(token, now)
    return Principal(name=row.token_name, role=Role(row.role))


def end(session: Session, *, session_id: str) -> bool:
    """Sign the session out: its id is refused from now on. False when there was none."""
    gone = session.execute(delete(DashboardSession)
                           .where(DashboardSession.session_hash == hash_token(session_id)))
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def clear_ended(session: Session, *, now: datetime, policy: SessionPolicy) -> None:
    """Delete the sessions that idled out or outlived their lifetime."""
    session.execute(delete(DashboardSession).where(or_(
        DashboardSession.last_seen_at < now - policy.idle,
        DashboardSession.created_at < now - policy.lifetime)))

