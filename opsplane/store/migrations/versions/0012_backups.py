"""Backups (`backup.tables`): the catalog of backups and their copies per repository, and the
restores, verifications and drills with what they measured.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("policy", sa.String(63), nullable=False),
        sa.Column("component", sa.String(100), nullable=True),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("facts", json_doc, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("verified_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
    )
    op.create_index("ix_backups_policy_started", "backups", ["policy", "started_at"])
    op.create_index("ix_backups_state", "backups", ["state"])
    op.create_table(
        "backup_copies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(63), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("checked_at", ts, nullable=True),
        sa.ForeignKeyConstraint(["backup_id"], ["backups.id"], name="fk_backup_copies_backup_id_backups",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_backup_copies"),
    )
    op.create_index("ix_backup_copies_backup", "backup_copies", ["backup_id"])
    op.create_index("ix_backup_copies_repository", "backup_copies", ["repository", "state"])
    op.create_table(
        "restores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(63), nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=True),
        sa.Column("repository", sa.String(63), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("recovery_target", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("report", json_doc, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_restores"),
    )
    op.create_index("ix_restores_policy_purpose", "restores", ["policy", "purpose", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_restores_policy_purpose", "restores")
    op.drop_table("restores")
    op.drop_index("ix_backup_copies_repository", "backup_copies")
    op.drop_index("ix_backup_copies_backup", "backup_copies")
    op.drop_table("backup_copies")
    op.drop_index("ix_backups_state", "backups")
    op.drop_index("ix_backups_policy_started", "backups")
    op.drop_table("backups")
