"""bot: configuration per workspace, FAQ entries, per-conversation state, turns for the learning loop

Revision ID: 0007_bot
Revises: 0010_contacts
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0007_bot"
down_revision = "0010_contacts"
branch_labels = None
depends_on = None


def _json() -> Any:
    return sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _time(name: str, nullable: bool = False) -> Any:
    return sa.Column(name, tresen.db.types.UTCDateTime(timezone=True), nullable=nullable)


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "bot_configs",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("business", sa.String(length=200), nullable=False),
        sa.Column("kb_version", sa.Integer(), nullable=False),
        sa.Column("persona", _json(), nullable=False),
        sa.Column("blacklist", _json(), nullable=False),
        sa.Column("flows", _json(), nullable=False),
        _time("updated_at"),
        _workspace_fk("bot_configs"),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_bot_configs")),
    )
    op.create_table(
        "bot_faqs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("content", _json(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _workspace_fk("bot_faqs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_faqs")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_bot_faqs_workspace_id")),
    )
    op.create_index(op.f("ix_bot_faqs_workspace_id"), "bot_faqs", ["workspace_id"], unique=False)
    op.create_table(
        "bot_conversations",
        sa.Column("conversation_id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("state", _json(), nullable=False),
        _time("handed_over_at", nullable=True),
        sa.Column("handover_reason", sa.String(length=32), nullable=True),
        sa.Column("handover_summary", sa.Text(), nullable=True),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_bot_conversations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        _workspace_fk("bot_conversations"),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_bot_conversations")),
    )
    op.create_index(
        op.f("ix_bot_conversations_workspace_id"),
        "bot_conversations",
        ["workspace_id"],
        unique=False,
    )
    op.create_table(
        "bot_turns",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("conversation_id", sa.String(length=26), nullable=False),
        sa.Column("message_id", sa.String(length=26), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("faq_key", sa.String(length=100), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        _time("occurred_at"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_bot_turns_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_bot_turns_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_turns")),
    )
    op.create_index(
        "ix_bot_turns_workspace_at", "bot_turns", ["workspace_id", "occurred_at"], unique=False
    )
    op.create_index(
        op.f("ix_bot_turns_conversation_id"), "bot_turns", ["conversation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bot_turns_conversation_id"), table_name="bot_turns")
    op.drop_index("ix_bot_turns_workspace_at", table_name="bot_turns")
    op.drop_table("bot_turns")
    op.drop_index(op.f("ix_bot_conversations_workspace_id"), table_name="bot_conversations")
    op.drop_table("bot_conversations")
    op.drop_index(op.f("ix_bot_faqs_workspace_id"), table_name="bot_faqs")
    op.drop_table("bot_faqs")
    op.drop_table("bot_configs")
