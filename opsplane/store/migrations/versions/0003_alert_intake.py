"""Alerts received from a Prometheus: where an alert came from, when it ends unless sent
again, and the sender's link to its expression.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_states") as table:
        table.add_column(sa.Column("source", sa.String(63), nullable=False, server_default="rule"))
        table.add_column(sa.Column("ends_at", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("generator_url", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("alert_states") as table:
        table.drop_column("generator_url")
        table.drop_column("ends_at")
        table.drop_column("source")
