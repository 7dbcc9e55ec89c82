"""The event log's hash chain: each event's predecessor's hash and its own, the chain's head
and checkpoint (`event_chain`), and the events already there chained in id order.

Deleting events becomes possible for those at or before the checkpoint only (retention
archives them first); updates stay refused.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from opsplane.events.chain import GENESIS, Row, rows_from

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

APPEND_ONLY = "the event log is append-only"
KEPT = "the event log is append-only: only events at or before the chain checkpoint may be deleted"
BATCH = 5000


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "event_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("base_id", sa.BigInteger(), nullable=False),
        sa.Column("base_hash", sa.String(64), nullable=False),
        sa.Column("base_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_event_chain"),
    )
    op.add_column("events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("hash", sa.String(64), nullable=True))
    _drop_guards(dialect)
    last_id, last_hash = _chain_existing(bind, dialect)
    bind.execute(sa.text("INSERT INTO event_chain (id, last_id, last_hash, base_id, base_hash) "
                         "VALUES (1, :last_id, :last_hash, 0, :genesis)"),
                 {"last_id": last_id, "last_hash": last_hash, "genesis": GENESIS})
    if dialect == "sqlite":
        op.execute(f"CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
        op.execute(f"CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
                   f"WHEN OLD.id > (SELECT base_id FROM event_chain WHERE id = 1) "
                   f"BEGIN SELECT RAISE(ABORT, '{KEPT}'); END")
    elif dialect == "postgresql":
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR TRUNCATE ON events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION opsplane_events_append_only()")
        op.execute(
            "CREATE FUNCTION opsplane_events_kept() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF OLD.id > (SELECT base_id FROM event_chain WHERE id = 1) THEN "
            f"RAISE EXCEPTION '{KEPT}'; END IF; RETURN OLD; END $$")
        op.execute("CREATE TRIGGER events_kept BEFORE DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION opsplane_events_kept()")


def _drop_guards(dialect: str) -> None:
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP TRIGGER IF EXISTS events_kept ON events")


def _chain_existing(bind: sa.engine.Connection, dialect: str) -> tuple[int, str]:
    """Chain the events already in the store in id order; the head's id and hash."""
    details = "details::text" if dialect == "postgresql" else "details"
    prev, last_id, after = GENESIS, 0, 0
    update = sa.text("UPDATE events SET prev_hash = :prev_hash, hash = :hash WHERE id = :id")
    while True:
        found = bind.execute(sa.text(
            f"SELECT id, ts, kind, actor, target, service, outcome, {details}, NULL, NULL FROM events "
            "WHERE id > :after ORDER BY id LIMIT :batch"), {"after": after, "batch": BATCH}).all()
        if not found:
            return last_id, prev
        changes = []
        for row in rows_from(found):
            linked = Row(row.id, row.ts, row.kind, row.actor, row.target, row.service, row.outcome,
                         row.details, prev, None)
            prev, last_id = linked.computed(), row.id
            changes.append({"id": row.id, "prev_hash": linked.prev_hash, "hash": prev})
        bind.execute(update, changes)
        after = last_id


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_guards(dialect)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS opsplane_events_kept()")
    op.drop_column("events", "hash")
    op.drop_column("events", "prev_hash")
    op.drop_table("event_chain")
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    elif dialect == "postgresql":
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION opsplane_events_append_only()")
