"""consent state per contact, settings per workspace

Revision ID: 0004_consent
Revises: 0003_privacy
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_consent"
down_revision = "0003_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild on SQLite, which would drop the search triggers on contacts).
    json_type = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    op.add_column(
        "workspaces", sa.Column("settings", json_type, nullable=False, server_default="{}")
    )
    op.add_column(
        "contacts",
        sa.Column("consent_state", sa.String(12), nullable=False, server_default="unknown"),
    )


def downgrade() -> None:
    op.drop_column("contacts", "consent_state")
    op.drop_column("workspaces", "settings")
