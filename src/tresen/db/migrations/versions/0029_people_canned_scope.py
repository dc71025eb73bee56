"""canned_replies: scope (workspace, team, personal), texts per language, attachment, usage count

Revision ID: 0029_people_canned_scope
Revises: 0028_channels_last_webhook
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tresen.db.types import JsonType

revision = "0029_people_canned_scope"
down_revision = "0028_channels_last_webhook"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "canned_replies",
        sa.Column("scope", sa.String(length=12), nullable=False, server_default="workspace"),
    )
    op.add_column("canned_replies", sa.Column("team_id", sa.String(length=26), nullable=True))
    op.add_column("canned_replies", sa.Column("owner_id", sa.String(length=26), nullable=True))
    op.add_column(
        "canned_replies",
        sa.Column("texts", JsonType, nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column("canned_replies", sa.Column("attachment", JsonType, nullable=True))
    op.add_column(
        "canned_replies",
        sa.Column("use_count", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    for column in ("use_count", "attachment", "texts", "owner_id", "team_id", "scope"):
        op.drop_column("canned_replies", column)
