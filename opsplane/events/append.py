"""Chaining new events as their session flushes: ids, links and the head, under one lock.

Every `Event` a session is about to insert, whether `events.service.record` made it or not, is
given here, in the order it was added, the next id after the chain's head (or after the
highest id in the table, should a row have been written past the chain), its predecessor's
hash and its own; the head moves to the last of them in the same transaction. Two writers
never chain onto one predecessor: the head row is locked first, by `SELECT ... FOR UPDATE`
on PostgreSQL and on SQLite by writing it (SQLite takes its one write lock at a
transaction's first write, so nothing else writes between the read and the insert). The lock
is held from the flush to the end of the writer's transaction; decision 0030.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from opsplane.errors import StoreError
from opsplane.events.chain import canonical_ts, event_hash, plain
from opsplane.events.tables import Event

# Plain driver SQL on the session's own DBAPI connection (same transaction): the statements
# never change, and SQLAlchemy's layers per statement would cost more than the hashing.
_LOCK = {
    "postgresql": "SELECT c.last_id, c.last_hash, (SELECT max(id) FROM events) FROM event_chain c "
                  "WHERE c.id = 1 FOR UPDATE OF c",
    "sqlite": "UPDATE event_chain SET last_id = last_id WHERE id = 1 "
              "RETURNING last_id, last_hash, (SELECT max(id) FROM events)",
}
_MOVE = {
    "postgresql": "UPDATE event_chain SET last_id = %(last_id)s, last_hash = %(last_hash)s WHERE id = 1",
    "sqlite": "UPDATE event_chain SET last_id = :last_id, last_hash = :last_hash WHERE id = 1",
}


def lock_head(session: Session) -> tuple[int, str]:
    """Lock the chain's head for this transaction: the id the next event follows and the hash
    it links to."""
    connection = session.connection()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_LOCK[connection.dialect.name])
        found = cursor.fetchone()
    finally:
        cursor.close()
    if found is None:
        raise StoreError("the event log's chain head (table event_chain) is missing; "
                         "run `opsplane db upgrade`")
    last_id, last_hash, highest = found
    return max(int(last_id), int(highest or 0)), str(last_hash)


def chain(session: Session, events: list[Event]) -> None:
    """Give `events` (in order) their ids and hashes after the locked head, and move it."""
    last_id, prev = lock_head(session)
    for event in events:
        last_id += 1
        event.id = last_id
        event.prev_hash = prev
        event.hash = prev = event_hash(last_id, canonical_ts(event.ts), event.kind, event.actor, event.target,
                                       event.service, event.outcome, plain(event.details or {}), prev)
    connection = session.connection()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_MOVE[connection.dialect.name], {"last_id": last_id, "last_hash": prev})
    finally:
        cursor.close()


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    fresh = [item for item in session.new if isinstance(item, Event)]
    if fresh:
        if len(fresh) > 1:
            fresh.sort(key=lambda item: inspect(item).insert_order or 0)
        chain(session, fresh)


sa_event.listen(Session, "before_flush", _before_flush)
