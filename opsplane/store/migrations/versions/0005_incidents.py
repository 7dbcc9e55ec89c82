"""Incidents: the incidents, their status updates, their alerts and action items.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _incident_id(table: str) -> sa.Column:
    return sa.Column("incident_id", sa.Integer(),
                     sa.ForeignKey("incidents.id", ondelete="CASCADE",
                                   name=f"fk_{table}_incident_id_incidents"),
                     nullable=False)


def upgrade() -> None:
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    ts = sa.DateTime(timezone=True)

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_key", sa.String(300), nullable=False),
        sa.Column("commander", sa.String(200)),
        sa.Column("participants", json_doc, nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("detected_at", ts),
        sa.Column("acknowledged_at", ts),
        sa.Column("resolved_at", ts),
        sa.Column("next_update_at", ts),
        sa.Column("reminded_for", ts),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_status_group", "incidents", ["status", "group_key"])
    op.create_index("ix_incidents_started_at", "incidents", ["started_at"])

    op.create_table(
        "incident_updates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _incident_id("incident_updates"),
        sa.Column("at", ts, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("next_update_at", ts),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_updates"),
    )
    op.create_index("ix_incident_updates_incident_id", "incident_updates", ["incident_id", "at"])
    op.create_index("ix_incident_updates_public", "incident_updates", ["public", "at"])

    op.create_table(
        "incident_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _incident_id("incident_alerts"),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("active_at", ts, nullable=False),
        sa.Column("alertname", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("joined_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_alerts"),
        sa.UniqueConstraint("fingerprint", "active_at", name="uq_incident_alerts_fingerprint"),
    )
    op.create_index("ix_incident_alerts_incident_id", "incident_alerts", ["incident_id"])

    op.create_table(
        "incident_action_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _incident_id("incident_action_items"),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("due", sa.Date()),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("done_at", ts),
        sa.PrimaryKeyConstraint("id", name="pk_incident_action_items"),
    )
    op.create_index("ix_incident_action_items_incident_id", "incident_action_items", ["incident_id"])


def downgrade() -> None:
    for table in ("incident_action_items", "incident_alerts", "incident_updates", "incidents"):
        op.drop_table(table)
