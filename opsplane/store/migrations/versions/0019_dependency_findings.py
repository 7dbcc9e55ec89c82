"""Dependency findings (`dependencies.tables`): each vulnerability of a service's package, from
first seen to fixed, with its CVSS score, severity and due time.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "dependency_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("ecosystem", sa.String(16), nullable=False),
        sa.Column("package", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("vuln_id", sa.String(100), nullable=False),
        sa.Column("aliases", json_doc, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("cvss_score", sa.Float(), nullable=True),
        sa.Column("cvss_vector", sa.String(200), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("rated_by", sa.String(16), nullable=False),
        sa.Column("fix_versions", json_doc, nullable=False),
        sa.Column("first_seen", ts, nullable=False),
        sa.Column("last_seen", ts, nullable=False),
        sa.Column("due_at", ts, nullable=True),
        sa.Column("fixed_at", ts, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dependency_findings"),
    )
    op.create_index("ix_dependency_findings_open", "dependency_findings", ["state", "service"])


def downgrade() -> None:
    op.drop_index("ix_dependency_findings_open", "dependency_findings")
    op.drop_table("dependency_findings")
