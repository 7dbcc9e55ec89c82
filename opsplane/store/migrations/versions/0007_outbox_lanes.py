"""The outbox's lanes and channel holds: each row's recipient, so that order is kept per
recipient rather than across everyone paged for one incident; and the channels a receiver
throttled (HTTP 429), held until its Retry-After.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notification_outbox",
                  sa.Column("recipient", sa.String(200), nullable=False, server_default=""))
    # rows queued before: their recipient is the `to` of the notification they carry
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE notification_outbox SET recipient = COALESCE(payload->>'to', '')")
    else:
        op.execute("UPDATE notification_outbox SET recipient = COALESCE(json_extract(payload, '$.to'), '')")
    op.drop_index("ix_notification_outbox_group", table_name="notification_outbox")
    op.create_index("ix_notification_outbox_lane", "notification_outbox",
                    ["channel", "group_key", "recipient", "state", "id"])
    op.create_table(
        "notification_channel_holds",
        sa.Column("channel", sa.String(63), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name="pk_notification_channel_holds"),
    )


def downgrade() -> None:
    op.drop_table("notification_channel_holds")
    op.drop_index("ix_notification_outbox_lane", table_name="notification_outbox")
    with op.batch_alter_table("notification_outbox") as table:
        table.drop_column("recipient")
    op.create_index("ix_notification_outbox_group", "notification_outbox",
                    ["channel", "group_key", "state", "id"])
