"""Alerting: alert states, the notification log and silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    ts = sa.DateTime(timezone=True)

    op.create_table(
        "alert_states",
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(500), nullable=False),
        sa.Column("labels", json_doc, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("annotations", json_doc, nullable=False),
        sa.Column("active_at", ts, nullable=False),
        sa.Column("last_seen_at", ts, nullable=False),
        sa.Column("fired_at", ts),
        sa.Column("resolved_at", ts),
        sa.Column("keep_firing_since", ts),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_alert_states"),
    )
    op.create_index("ix_alert_states_rule", "alert_states", ["rule"])

    op.create_table(
        "alert_notifications",
        sa.Column("receiver", sa.String(63), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("sent_at", ts, nullable=False),
        sa.Column("firing", json_doc, nullable=False),
        sa.Column("resolved", json_doc, nullable=False),
        sa.PrimaryKeyConstraint("receiver", "group_id", name="pk_alert_notifications"),
    )

    op.create_table(
        "silences",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("matchers", json_doc, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("starts_at", ts, nullable=False),
        sa.Column("ends_at", ts, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_table("alert_notifications")
    op.drop_table("alert_states")
