"""Retention of the event log: events older than `audit.at_hand` moved into a signed archive
and deleted from the store behind a checkpoint; archives older than `audit.keep` deleted.

The order makes a crash harmless: the archive is written, synced and checked first; then one
transaction locks the chain's head, moves the checkpoint to the last archived event (its id
and hash) and deletes the events up to it (the store's trigger refuses to delete any event
after the checkpoint). A crash before the commit leaves the events in the store and an archive
that the next run writes again under the same name. The walk of the store then starts from
the checkpoint and says so; the archives carry the chain before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text, update

from opsplane.events import export
from opsplane.events.models import AuditSettings
from opsplane.events.tables import Event, EventChain
from opsplane.events.verify import snapshot
from opsplane.store import Store

ARCHIVE_GLOB = "events-*.jsonl"


def cutoffs(now: datetime, settings: AuditSettings) -> tuple[datetime, datetime]:
    """(events before this are archived, archives whose newest event is before this are deleted)."""
    return now - timedelta(seconds=settings.at_hand), now - timedelta(seconds=settings.keep)


def expired(archives: Iterable[tuple[Path, datetime | None]], before: datetime) -> list[Path]:
    """The archives whose newest event is older than `before` (one without a time is kept)."""
    return sorted(path for path, newest in archives if newest is not None and newest < before)


def archive_name(first: int, last: int) -> str:
    return f"events-{first:012d}-{last:012d}.jsonl"


@dataclass
class Retention:
    """What one run did: the archive written (None: nothing was old enough), the events moved,
    the new checkpoint, the archives deleted, and why nothing was moved if the chain was broken."""

    archive: Path | None = None
    moved: int = 0
    checkpoint: int | None = None
    deleted: list[Path] = field(default_factory=list)
    broken: str | None = None
    kept: int = 0


def boundary(store: Store, before: datetime) -> tuple[int, int] | None:
    """The first and last event to archive: from the first after the checkpoint to the one
    before the first event at or after `before` (all when none is that new); None when
    nothing after the checkpoint is that old."""
    with snapshot(store) as connection:
        base = int(connection.execute(text("SELECT base_id FROM event_chain WHERE id = 1")).scalar() or 0)
        young = connection.execute(select(func.min(Event.id))
                                   .where(Event.id > base, Event.ts >= before)).scalar()
        if young is not None:
            last = int(young) - 1
        else:
            last = int(connection.execute(text("SELECT max(id) FROM events WHERE id > :base"),
                                          {"base": base}).scalar() or 0)
        first = connection.execute(text("SELECT min(id) FROM events WHERE id > :base AND id <= :last"),
                                   {"base": base, "last": last}).scalar()
    return (int(first), last) if first is not None else None


def move_old_events(store: Store, settings: AuditSettings, base_dir: Path, key: Ed25519PrivateKey, *,
                    now: datetime, actor: str) -> Retention:
    """Archive and delete the events older than `at_hand`, then delete expired archives."""
    from opsplane.events import service
    from opsplane.events.append import lock_head

    directory = (base_dir / settings.archive_dir).resolve()
    move_before, delete_before = cutoffs(now, settings)
    done = Retention()
    found = boundary(store, move_before)
    if found is not None:
        first, last = found
        path = directory / archive_name(first, last)
        written = export.write(store, path, key, now=now, after=first - 1, upto=last, kind="archive")
        assert written is not None and written.result.first is not None and written.result.last is not None
        if not written.intact:
            path.unlink()
            why = written.result.problems[0].what if written.result.problems else "broken"
            done.broken = f"nothing archived: the events to archive do not verify ({why})"
        else:
            checkpoint = written.result.last
            with store.session() as session:
                lock_head(session)
                connection = session.connection()
                connection.execute(update(EventChain).where(EventChain.id == 1).values(
                    base_id=checkpoint.id, base_hash=checkpoint.hash, base_at=now))
                gone = connection.execute(text("DELETE FROM events WHERE id <= :id"), {"id": checkpoint.id})
                done.moved = int(gone.rowcount or 0)  # type: ignore[attr-defined]
                service.record(session, kind="events.archived", actor=actor, target="events", outcome="ok",
                               ts=now, details={"archive": path.name, "first": written.result.first.id,
                                                "last": checkpoint.id, "events": done.moved,
                                                "checkpoint_hash": checkpoint.hash,
                                                "before": move_before.isoformat()})
            done.archive, done.checkpoint = path, checkpoint.id
    archives = [(path, _newest(path)) for path in sorted(directory.glob(ARCHIVE_GLOB))] \
        if directory.is_dir() else []
    done.deleted = expired(archives, delete_before)
    done.kept = len(archives) - len(done.deleted)
    for path in done.deleted:
        path.unlink()
    if done.deleted:
        with store.session() as session:
            service.record(session, kind="events.archives_deleted", actor=actor, target="events",
                           outcome="ok", ts=now, details={"archives": [p.name for p in done.deleted],
                                                          "before": delete_before.isoformat()})
    return done


def _newest(path: Path) -> datetime | None:
    """The time of the newest event in an archive, from its manifest."""
    try:
        last = export.read_manifest(path).get("last_ts")
    except export.BadExport:
        return None
    return datetime.fromisoformat(last.replace("Z", "+00:00")) if isinstance(last, str) else None
