"""Withdrawn notifications: a row's send in progress (`sending_since`), why a row ended unsent
(`reason`), and the withdrawals themselves (an incident's pages once it was acknowledged), so
that a row queued or claimed after one is withdrawn too.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.add_column("notification_outbox", sa.Column("sending_since", ts))
    op.add_column("notification_outbox", sa.Column("reason", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "notification_withdrawals",
        sa.Column("group_key", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.PrimaryKeyConstraint("group_key", "prefix", name="pk_notification_withdrawals"),
    )


def downgrade() -> None:
    op.drop_table("notification_withdrawals")
    with op.batch_alter_table("notification_outbox") as table:
        table.drop_column("reason")
        table.drop_column("sending_since")
