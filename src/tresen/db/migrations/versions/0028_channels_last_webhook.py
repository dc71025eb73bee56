"""channels: time and result of the last webhook call (one row update per channel)

Revision ID: 0028_channels_last_webhook
Revises: 0027_thread_owner
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0028_channels_last_webhook"
down_revision = "0027_thread_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy on SQLite).
    op.add_column(
        "channels",
        sa.Column("last_webhook_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("channels", sa.Column("last_webhook_result", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("channels", "last_webhook_result")
    op.drop_column("channels", "last_webhook_at")
