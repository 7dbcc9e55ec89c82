"""Dashboard sessions kept in the store (the cookie holds a random id, never the token), an
optional expiry for API tokens, and an incident's public title for the status page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("token_id", big_id,
                  sa.ForeignKey("api_tokens.id", ondelete="CASCADE",
                                name="fk_dashboard_sessions_token_id_api_tokens"),
                  nullable=False),
        sa.Column("token_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("last_seen_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_sessions"),
        sa.UniqueConstraint("session_hash", name="uq_dashboard_sessions_session_hash"),
    )
    op.create_index("ix_dashboard_sessions_token_id", "dashboard_sessions", ["token_id"])
    op.add_column("api_tokens", sa.Column("expires_at", ts))
    op.add_column("incidents", sa.Column("public_title", sa.String(300)))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("public_title")
    with op.batch_alter_table("api_tokens") as table:
        table.drop_column("expires_at")
    op.drop_index("ix_dashboard_sessions_token_id", table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
