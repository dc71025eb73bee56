"""tracked links and their clicks (campaign_id stays a plain column until campaigns exist);
subscriptions.source widened to 64 characters ("messenger keyword", "instagram keyword")

Revision ID: 0013_link_tracking
Revises: 0012_send_job_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0013_link_tracking"
down_revision = "0013_privacy_restriction_erasure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        op.alter_column(
            "subscriptions",
            "source",
            type_=sa.String(length=64),
            existing_type=sa.String(length=16),
            existing_nullable=False,
        )
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.String(length=26), nullable=True),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("clicks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_tracked_links_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_tracked_links_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_links")),
        sa.UniqueConstraint("token", name=op.f("uq_tracked_links_token")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_tracked_links_workspace_id")),
    )
    op.create_index(
        "ix_tracked_links_campaign", "tracked_links", ["workspace_id", "campaign_id"], unique=False
    )
    op.create_index(
        op.f("ix_tracked_links_contact_id"), "tracked_links", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_tracked_links_workspace_id"), "tracked_links", ["workspace_id"], unique=False
    )
    op.create_table(
        "link_clicks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("link_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("clicked_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["tracked_links.id"],
            name=op.f("fk_link_clicks_link_id_tracked_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    op.create_index(
        "ix_link_clicks_workspace_at", "link_clicks", ["workspace_id", "clicked_at"], unique=False
    )
    op.create_index(op.f("ix_link_clicks_link_id"), "link_clicks", ["link_id"], unique=False)
    op.create_index(op.f("ix_link_clicks_contact_id"), "link_clicks", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_table("link_clicks")
    op.drop_table("tracked_links")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "subscriptions",
            "source",
            type_=sa.String(length=16),
            existing_type=sa.String(length=64),
            existing_nullable=False,
            postgresql_using="left(source, 16)",
        )
