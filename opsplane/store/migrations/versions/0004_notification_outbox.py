"""The notification outbox: notifications waiting for, or done with, delivery.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    ts = sa.DateTime(timezone=True)

    op.create_table(
        "notification_outbox",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(63), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("group_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("payload", json_doc, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("next_attempt_at", ts, nullable=False),
        sa.Column("last_attempt_at", ts),
        sa.Column("finished_at", ts),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("digest_id", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_notification_outbox"),
        sa.UniqueConstraint("channel", "key", name="uq_notification_outbox_channel_key"),
    )
    op.create_index("ix_notification_outbox_state_next", "notification_outbox",
                    ["state", "next_attempt_at"])
    op.create_index("ix_notification_outbox_group", "notification_outbox",
                    ["channel", "group_key", "state", "id"])


def downgrade() -> None:
    op.drop_table("notification_outbox")
