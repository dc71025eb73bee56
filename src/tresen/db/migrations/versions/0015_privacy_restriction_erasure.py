"""restriction (Art. 18) on contacts; erasure requests that resume after a crash

Revision ID: 0013_privacy_restriction_erasure
Revises: 0012_send_job_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tresen.db.types import JsonType, UTCDateTime

revision = "0013_privacy_restriction_erasure"
down_revision = "0013_bot_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("restricted_at", UTCDateTime(), nullable=True))
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column(
            "workspace_id",
            sa.String(26),
            sa.ForeignKey(
                "workspaces.id",
                ondelete="CASCADE",
                name="fk_erasure_requests_workspace_id_workspaces",
            ),
            nullable=False,
        ),
        sa.Column("contact_id", sa.String(26), nullable=False),
        sa.Column("actor_id", sa.String(26), nullable=True),
        sa.Column("via", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("counts", JsonType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_requests"),
    )
    op.create_index("ix_erasure_requests_workspace_id", "erasure_requests", ["workspace_id"])
    op.create_index("ix_erasure_requests_contact_id", "erasure_requests", ["contact_id"])
    op.create_index("ix_erasure_requests_state", "erasure_requests", ["state"])


def downgrade() -> None:
    op.drop_table("erasure_requests")
    op.drop_column("contacts", "restricted_at")  # SQLite >= 3.35 drops a column in place
