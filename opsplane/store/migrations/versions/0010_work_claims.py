"""Claims on work that must happen once (`store.claims`): its key, holder, fencing token,
when it was claimed, until when, and when it was done.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "work_claims",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
        sa.Column("done_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_work_claims"),
    )


def downgrade() -> None:
    op.drop_table("work_claims")
