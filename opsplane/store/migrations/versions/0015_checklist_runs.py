"""Checklist runs (`checklists.tables`): each run of a checklist, its slot and counts; the run's
items are the runbook run it points to.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "checklist_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("checklist", sa.String(100), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("slot", ts, nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("warned", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("items", json_doc, nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_checklist_runs"),
        sa.ForeignKeyConstraint(["run_id"], ["runbook_runs.id"],
                                name="fk_checklist_runs_run_id_runbook_runs"),
        sa.UniqueConstraint("checklist", "slot", name="uq_checklist_runs_slot"),
    )
    op.create_index("ix_checklist_runs_checklist", "checklist_runs", ["checklist"])


def downgrade() -> None:
    op.drop_index("ix_checklist_runs_checklist", "checklist_runs")
    op.drop_table("checklist_runs")
