"""SLO counts (`slo.tables`): each SLO's good and all events per minute (kept three days) and
per hour (kept 400 days).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _counts() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("slo", sa.String(63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("good", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("slices", sa.Integer(), nullable=False),
        sa.Column("bad_slices", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table("slo_minutes", *_counts(), sa.PrimaryKeyConstraint("slo", "at", name="pk_slo_minutes"))
    op.create_table("slo_hours", *_counts(), sa.Column("minutes", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("slo", "at", name="pk_slo_hours"))


def downgrade() -> None:
    op.drop_table("slo_hours")
    op.drop_table("slo_minutes")
