"""Capacity recordings (`capacity.tables`): each resource's use at each recording, and per hour.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "capacity_samples",
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("resource", "at", name="pk_capacity_samples"),
    )
    op.create_table(
        "capacity_hours",
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("peak", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("resource", "at", name="pk_capacity_hours"),
    )


def downgrade() -> None:
    op.drop_table("capacity_hours")
    op.drop_table("capacity_samples")
