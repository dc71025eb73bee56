"""messages: held until the contact consents (then handled as if they had just come)

Revision ID: 0021_consent_held
Revises: 0020_webchat_sessions
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_consent_held"
down_revision = "0020_webchat_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE: a batch copy on SQLite would drop the search triggers of messages.
    op.add_column(
        "messages",
        sa.Column("consent_held", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("messages", "consent_held")
