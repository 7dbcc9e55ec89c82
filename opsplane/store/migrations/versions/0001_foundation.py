"""Foundation: the event log, API tokens and check states.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = "the event log is append-only"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    ts = sa.DateTime(timezone=True)

    op.create_table(
        "events",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("ts", ts, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("service", sa.String(100)),
        sa.Column("outcome", sa.String(50), nullable=False),
        sa.Column("details", json_doc, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_kind_ts", "events", ["kind", "ts"])
    op.create_index("ix_events_service_ts", "events", ["service", "ts"])

    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION opsplane_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION opsplane_events_append_only()"
        )

    op.create_table(
        "api_tokens",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", ts),
        sa.Column("last_used_at", ts),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )

    op.create_table(
        "check_states",
        sa.Column("check_id", sa.String(200), nullable=False),
        sa.Column("component", sa.String(100), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", ts, nullable=False),
        sa.PrimaryKeyConstraint("check_id", name="pk_check_states"),
    )


def downgrade() -> None:
    op.drop_table("check_states")
    op.drop_table("api_tokens")
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS opsplane_events_append_only()")
    op.drop_table("events")
