"""topics and subscriptions (double opt-in), transactional notifications, topic on messages

Revision ID: 0008_topics
Revises: 0006_privacy
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tresen.db.types

revision = "0008_topics"
down_revision = "0006_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "descriptions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_topics_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("workspace_id", "keyword", name=op.f("uq_topics_workspace_id")),
    )
    op.create_index(op.f("ix_topics_workspace_id"), "topics", ["workspace_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("topic_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("token_used_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("requested_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_subscriptions_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_subscriptions_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_subscriptions_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_subscriptions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_subscriptions_token_hash")),
        sa.UniqueConstraint("topic_id", "contact_id", name=op.f("uq_subscriptions_topic_id")),
    )
    op.create_index(
        op.f("ix_subscriptions_contact_id"), "subscriptions", ["contact_id"], unique=False
    )
    op.create_index(
        "ix_subscriptions_state_requested", "subscriptions", ["state", "requested_at"], unique=False
    )
    op.create_index(op.f("ix_subscriptions_topic_id"), "subscriptions", ["topic_id"], unique=False)
    op.create_index(
        op.f("ix_subscriptions_workspace_id"), "subscriptions", ["workspace_id"], unique=False
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("token_id", sa.String(length=26), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=26), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("notified_state", sa.String(length=12), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_notifications_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_notifications_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "workspace_id", "idempotency_key", name=op.f("uq_notifications_workspace_id")
        ),
    )
    op.create_index("ix_notifications_open", "notifications", ["done", "created_at"], unique=False)
    op.create_index(
        op.f("ix_notifications_workspace_id"), "notifications", ["workspace_id"], unique=False
    )

    # Plain ADD COLUMN: a batch rebuild on SQLite would drop the search triggers on messages.
    op.add_column("messages", sa.Column("topic_id", sa.String(length=26), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "topic_id")

    op.drop_index(op.f("ix_notifications_workspace_id"), table_name="notifications")
    op.drop_index("ix_notifications_open", table_name="notifications")

    op.drop_table("notifications")
    op.drop_index(op.f("ix_subscriptions_workspace_id"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_topic_id"), table_name="subscriptions")
    op.drop_index("ix_subscriptions_state_requested", table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_contact_id"), table_name="subscriptions")

    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_topics_workspace_id"), table_name="topics")

    op.drop_table("topics")
