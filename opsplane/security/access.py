"""The access review (quarterly, the manual's "review access permissions"): every active API
token with its role, who created it and when, its last use and expiry, and the dashboard
sessions signed in with it, judged as a pure function of those values and the time.

A token unused for `UNUSED` (90 days), or never used and created longer ago, is a warning:
revoke it. Every admin token is listed for review (info), an unused one is a warning like the
others. A token past its expiry but not revoked is noted. The same review is the `access-review`
job's report and `opsplane report access`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsplane.reports.models import Finding, Report

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from opsplane.reports.jobs import JobEnv

UNUSED = timedelta(days=90)
EXPIRING = timedelta(days=14)


@dataclass(frozen=True)
class TokenAccess:
    """One active token as the review sees it."""

    name: str
    role: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    expires_at: datetime | None
    sessions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by,
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "dashboard_sessions": self.sessions}


def _days(span: timedelta) -> int:
    return int(span.total_seconds() // 86400)


def flags(token: TokenAccess, now: datetime) -> list[Finding]:
    """What the review says of one token."""
    found: list[Finding] = []
    subject = f"token:{token.name}"
    revoke = f"revoke it if it is no longer needed (opsplane token revoke {token.name})"
    if token.expires_at is not None and token.expires_at <= now:
        found.append(Finding("info", subject, f"expired {_days(now - token.expires_at)} days ago and is "
                             f"not revoked; {revoke}"))
        return found
    if token.last_used_at is None:
        if now - token.created_at >= UNUSED:
            age = _days(now - token.created_at)
            found.append(Finding("warning", subject, f"never used in the {age} days since "
                                 f"{token.created_by} created it; {revoke}"))
    elif now - token.last_used_at >= UNUSED:
        idle = _days(now - token.last_used_at)
        found.append(Finding("warning", subject, f"unused for {idle} days; {revoke}"))
    if token.role == "admin":
        found.append(Finding("info", subject, f"an admin token (created by {token.created_by}): confirm its "
                             "holder still needs admin"))
    if token.expires_at is not None and token.expires_at - now <= EXPIRING:
        found.append(Finding("info", subject, f"expires in {_days(token.expires_at - now)} days"))
    return found


@dataclass(frozen=True)
class AccessReview:
    tokens: tuple[TokenAccess, ...]
    findings: tuple[Finding, ...]
    sessions: int

    def as_dict(self, now: datetime) -> dict[str, Any]:
        by_token: dict[str, list[str]] = {}
        for finding in self.findings:
            by_token.setdefault(finding.subject, []).append(finding.what)
        tokens = [{**t.as_dict(), "flags": by_token.get(f"token:{t.name}", [])} for t in self.tokens]
        return {"at": now.isoformat(), "unused_after_days": _days(UNUSED),
                "dashboard_sessions": self.sessions, "tokens": tokens,
                "findings": [f.as_dict() for f in self.findings]}


def review(tokens: Sequence[TokenAccess], now: datetime) -> AccessReview:
    findings = tuple(f for token in tokens for f in flags(token, now))
    return AccessReview(tuple(tokens), findings, sum(t.sessions for t in tokens))


def collect(session: Session) -> list[TokenAccess]:
    """The active tokens with their dashboard sessions, oldest first."""
    from sqlalchemy import func, select

    from opsplane.auth.tables import ApiToken, DashboardSession

    counts = dict(session.execute(select(DashboardSession.token_id, func.count())
                                  .group_by(DashboardSession.token_id)).all())
    rows = session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id))
    return [TokenAccess(r.name, r.role, r.created_at, r.created_by, r.last_used_at, r.expires_at,
                        counts.get(r.id, 0)) for r in rows]


def as_report(found: AccessReview, now: datetime) -> Report:
    flagged = sorted({f.subject for f in found.findings if f.severity != "info"})
    admins = sum(1 for t in found.tokens if t.role == "admin")
    summary = (f"{len(found.tokens)} active token(s), {admins} admin, {found.sessions} dashboard session(s); "
               + (f"{len(flagged)} to revoke or renew: {', '.join(s.removeprefix('token:') for s in flagged)}"
                  if flagged else f"none unused for {_days(UNUSED)} days"))
    lines = ["# Access review", "", summary, "", "| token | role | created | by | last used | expires | "
             "sessions |", "|---|---|---|---|---|---|---|"]
    for t in found.tokens:
        lines.append(f"| {t.name} | {t.role} | {t.created_at:%Y-%m-%d} | {t.created_by} | "
                     f"{f'{t.last_used_at:%Y-%m-%d}' if t.last_used_at else 'never'} | "
                     f"{f'{t.expires_at:%Y-%m-%d}' if t.expires_at else 'never'} | {t.sessions} |")
    if found.findings:
        lines += ["", "## Findings", ""]
        lines += [f"- **{f.severity}** {f.subject}: {f.what}" for f in found.findings]
    return Report(job="access-review", subject="tokens", summary=summary, findings=found.findings,
                  body=found.as_dict(now), markdown="\n".join(lines) + "\n")


def run(env: JobEnv) -> Report:
    """The `access-review` job."""
    now = env.clock.now()
    with env.store.session() as session:
        tokens = collect(session)
    return as_report(review(tokens, now), now)
