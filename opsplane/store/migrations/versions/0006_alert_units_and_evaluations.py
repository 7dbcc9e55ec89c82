"""Alerts know their rule's unit; the last alerting cycle is recorded (when, by whom, how often).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_states") as table:
        table.add_column(sa.Column("unit", sa.String(16)))
    op.create_table(
        "alert_evaluations",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("interval", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.Column("failing", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_alert_evaluations"),
    )


def downgrade() -> None:
    op.drop_table("alert_evaluations")
    with op.batch_alter_table("alert_states") as table:
        table.drop_column("unit")
