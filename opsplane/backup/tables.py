"""The backup catalog: every backup with its copies, and every restore (verifications and drills
are restores too, into scratch servers), each with what it measured.

A backup's states:

    running ──▶ complete ──verify──▶ verified | verify-failed
       │                   └── prune ──▶ expired
       └──▶ failed   (an error, or cut off: its claim lapsed while it ran)

Only `complete` and `verified` are good: a backup cut off half-way stays `running` until the
next look finds its claim gone, and is then `failed`; it is never listed as good. Every change is
also a `backup.*` event, written by `service.py` in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsplane.store.base import Base, JsonDoc, UTCDateTime

GOOD = ("complete", "verified")


class BackupRow(Base):
    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy: Mapped[str] = mapped_column(String(63), nullable=False)
    component: Mapped[str | None] = mapped_column(String(100))
    engine: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(Integer)  # the prior backup of a diff or incr
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(128))
    facts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule, manual, api
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_backups_policy_started", "policy", "started_at"),
                      Index("ix_backups_state", "state"))


class BackupCopyRow(Base):
    """One backup as one repository holds it, by the engine's own name for it there."""

    __tablename__ = "backup_copies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    backup_id: Mapped[int] = mapped_column(ForeignKey("backups.id", ondelete="CASCADE"), nullable=False)
    repository: Mapped[str] = mapped_column(String(63), nullable=False)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # present, missing, expired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_backup_copies_backup", "backup_id"),
                      Index("ix_backup_copies_repository", "repository", "state"))


class RestoreRow(Base):
    """A restore, a verification or a drill: what was restored, where to, and what it measured
    (`report`: RTO and RPO for drills, the checks for verifications)."""

    __tablename__ = "restores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # restore, verify, drill
    policy: Mapped[str] = mapped_column(String(63), nullable=False)
    backup_id: Mapped[int | None] = mapped_column(Integer)
    repository: Mapped[str | None] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(Text, nullable=False)
    recovery_target: Mapped[str | None] = mapped_column(String(64))  # latest, a time, a backup
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # running, succeeded, failed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report: Mapped[dict[str, Any]] = mapped_column(JsonDoc, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)

    __table_args__ = (Index("ix_restores_policy_purpose", "policy", "purpose", "started_at"),)
