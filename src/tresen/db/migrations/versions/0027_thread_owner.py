"""conversations: who owns a Messenger/Instagram thread (Meta's handover protocol)

Revision ID: 0027_thread_owner
Revises: 0026_domain_events
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0027_thread_owner"
down_revision = "0026_domain_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy on SQLite, which would drop the search triggers).
    op.add_column("conversations", sa.Column("thread_owner", sa.String(length=64), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("thread_changed_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("conversations", "thread_changed_at")
    op.drop_column("conversations", "thread_owner")
