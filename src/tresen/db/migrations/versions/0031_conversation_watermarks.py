"""conversations: the customer's delivery and read watermarks (Messenger), kept for late sends

Revision ID: 0031_conversation_watermarks
Revises: 0030_polish_test_addresses
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0031_conversation_watermarks"
down_revision = "0030_polish_test_addresses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy on SQLite).
    for column in ("delivered_until", "read_until"):
        op.add_column(
            "conversations",
            sa.Column(column, tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        )


def downgrade() -> None:
    op.drop_column("conversations", "read_until")
    op.drop_column("conversations", "delivered_until")
