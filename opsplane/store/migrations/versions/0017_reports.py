"""Reports (`reports.tables`): each run of a maintenance, security or capacity job, with its
findings and body.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("slot", ts, nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("counts", json_doc, nullable=False),
        sa.Column("findings", json_doc, nullable=False),
        sa.Column("body", json_doc, nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.UniqueConstraint("job", "slot", name="uq_reports_slot"),
    )
    op.create_index("ix_reports_job", "reports", ["job"])


def downgrade() -> None:
    op.drop_index("ix_reports_job", "reports")
    op.drop_table("reports")
