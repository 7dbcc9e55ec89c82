"""Deploys (`deploy.tables`): each deploy's plan, step, traffic share, approvals and verdicts;
one active deploy per service by a unique `active_service`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "deploys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("active_service", sa.String(100), nullable=True),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("from_version", sa.String(64), nullable=False),
        sa.Column("to_version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("plan", json_doc, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", ts, nullable=True),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("params", json_doc, nullable=False),
        sa.Column("approvals", json_doc, nullable=False),
        sa.Column("verdicts", json_doc, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deploys"),
        sa.UniqueConstraint("active_service", name="uq_deploys_active_service"),
    )
    op.create_index("ix_deploys_service_created", "deploys", ["service", "created_at"])
    op.create_index("ix_deploys_state", "deploys", ["state"])


def downgrade() -> None:
    op.drop_index("ix_deploys_state", "deploys")
    op.drop_index("ix_deploys_service_created", "deploys")
    op.drop_table("deploys")
