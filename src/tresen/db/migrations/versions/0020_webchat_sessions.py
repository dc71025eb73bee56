"""web chat: visitor sessions (token hashes) issued by /session; existing visitors kept

Revision ID: 0020_webchat_sessions
Revises: 0019_bot_embeddings
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0020_webchat_sessions"
down_revision = "0019_bot_embeddings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webchat_sessions",
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_webchat_sessions_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_webchat_sessions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", "address", name=op.f("pk_webchat_sessions")),
    )
    op.create_index(op.f("ix_webchat_sessions_workspace_id"), "webchat_sessions", ["workspace_id"])
    # Visitors who already wrote keep their session: the identity address is the token's hash.
    op.execute(
        "INSERT INTO webchat_sessions (channel_id, address, workspace_id, created_at, started_at) "
        "SELECT ci.channel_id, ci.address, ci.workspace_id, ci.created_at, ci.created_at "
        "FROM contact_identities ci JOIN channels c ON c.id = ci.channel_id "
        "WHERE c.kind = 'webchat' AND ci.address LIKE 'visitor-%'"
    )


def downgrade() -> None:
    op.drop_table("webchat_sessions")
