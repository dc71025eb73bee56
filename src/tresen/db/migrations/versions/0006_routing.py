"""routing: channel → team rules, per-agent limits, the waiting queue, a round-robin cursor

Revision ID: 0005_routing
Revises: 0004_consent
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0005_routing"
down_revision = "0004_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("team_id", sa.String(length=26), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_routing_rules_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_routing_rules_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_routing_rules_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_routing_rules_channel_id")),
    )
    op.create_index(
        op.f("ix_routing_rules_workspace_id"), "routing_rules", ["workspace_id"], unique=False
    )
    # Plain ADD COLUMN: a batch rebuild on SQLite would drop the search triggers and indexes.
    op.add_column("users", sa.Column("max_open", sa.Integer(), nullable=True))
    op.add_column("teams", sa.Column("rr_cursor", sa.String(length=26), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("queued_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_conversations_queue", "conversations", ["workspace_id", "queued_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_queue", table_name="conversations")
    op.drop_column("conversations", "queued_at")
    op.drop_column("teams", "rr_cursor")
    op.drop_column("users", "max_open")
    op.drop_index(op.f("ix_routing_rules_workspace_id"), table_name="routing_rules")
    op.drop_table("routing_rules")
