"""segments, campaigns and their recipient rows

Revision ID: 0013_campaigns
Revises: 0012_send_job_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0013_campaigns"
down_revision = "0013_link_tracking"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
_TIME = tresen.db.types.UTCDateTime(timezone=True)


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filter", _JSON, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        _workspace_fk("segments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_segments_workspace_id")),
    )
    op.create_index(op.f("ix_segments_workspace_id"), "segments", ["workspace_id"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("topic_id", sa.String(length=26), nullable=False),
        sa.Column("channel_ids", _JSON, nullable=False),
        sa.Column("filter", _JSON, nullable=False),
        sa.Column("segment_id", sa.String(length=26), nullable=True),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("frequency_cap", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", _TIME, nullable=True),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("expand_seconds", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(length=26), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        _workspace_fk("campaigns"),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_campaigns_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_workspace_id"), "campaigns", ["workspace_id"])
    op.create_index("ix_campaigns_state", "campaigns", ["state", "scheduled_at"])
    op.create_table(
        "campaign_recipients",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("campaign_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("identity_id", sa.String(length=26), nullable=False),
        sa.Column("message_id", sa.String(length=26), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _TIME, nullable=True),
        sa.Column("lease_until", _TIME, nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("done_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_recipients_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name=op.f("uq_campaign_recipients_campaign_id")
        ),
    )
    op.create_index(
        "ix_campaign_recipients_claim", "campaign_recipients", ["campaign_id", "state", "id"]
    )
    op.create_index(
        "ix_campaign_recipients_contact", "campaign_recipients", ["contact_id", "sent_at"]
    )


def downgrade() -> None:
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
    op.drop_table("segments")
