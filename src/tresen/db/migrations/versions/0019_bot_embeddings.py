"""bot: cached sentence embeddings of knowledge-base texts

Revision ID: 0019_bot_embeddings
Revises: 0014_campaign_expansion
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0019_bot_embeddings"
down_revision = "0014_campaign_expansion"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_embeddings",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bot_embeddings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_bot_embeddings")),
    )


def downgrade() -> None:
    op.drop_table("bot_embeddings")
