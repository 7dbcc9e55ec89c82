"""Runbook runs (`runbooks.tables`): each run of a runbook as a persisted state machine, and
every attempt of every step, started before it acts and done after.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("definition", json_doc, nullable=False),
        sa.Column("parameters", json_doc, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("current_step", sa.String(63), nullable=True),
        sa.Column("waiting_for", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runbook_runs"),
    )
    op.create_index("ix_runbook_runs_state", "runbook_runs", ["state"])
    op.create_index("ix_runbook_runs_incident", "runbook_runs", ["incident_id"])
    op.create_table(
        "runbook_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("confirmed_by", sa.String(200), nullable=True),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runbook_steps"),
        sa.ForeignKeyConstraint(["run_id"], ["runbook_runs.id"], name="fk_runbook_steps_run_id_runbook_runs"),
        sa.UniqueConstraint("run_id", "step_id", "attempt", name="uq_runbook_steps_attempt"),
    )
    op.create_index("ix_runbook_steps_run", "runbook_steps", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_runbook_steps_run", "runbook_steps")
    op.drop_table("runbook_steps")
    op.drop_index("ix_runbook_runs_incident", "runbook_runs")
    op.drop_index("ix_runbook_runs_state", "runbook_runs")
    op.drop_table("runbook_runs")
