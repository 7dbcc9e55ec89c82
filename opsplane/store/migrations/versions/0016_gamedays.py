"""Game days (`gameday.tables`): each game day as a persisted state machine, the record that
undoes its fault, and its report as JSON and Markdown.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "gamedays",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scenario", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("definition", json_doc, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("max_duration", sa.Float(), nullable=False),
        sa.Column("undo", json_doc, nullable=True),
        sa.Column("undone", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("report", json_doc, nullable=True),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("injected_at", ts, nullable=True),
        sa.Column("ended_at", ts, nullable=True),
        sa.Column("finished_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gamedays"),
    )
    op.create_index("ix_gamedays_state", "gamedays", ["state"])


def downgrade() -> None:
    op.drop_index("ix_gamedays_state", "gamedays")
    op.drop_table("gamedays")
