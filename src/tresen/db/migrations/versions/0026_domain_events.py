"""domain events (transactional outbox) and the consumers' cursors

Revision ID: 0026_domain_events
Revises: 0025_install_keys_processes
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tresen.db.types

revision = "0026_domain_events"
down_revision = "0025_install_keys_processes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lane", sa.String(length=26), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("occurred_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("dispatched_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_domain_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_domain_events")),
        sa.UniqueConstraint("id", name=op.f("uq_domain_events_id")),
        sa.UniqueConstraint("position", name=op.f("uq_domain_events_position")),
    )
    op.create_index(
        op.f("ix_domain_events_workspace_id"), "domain_events", ["workspace_id"], unique=False
    )
    op.create_index(
        op.f("ix_domain_events_dispatched_at"), "domain_events", ["dispatched_at"], unique=False
    )
    op.create_index(
        "ix_domain_events_lane_position", "domain_events", ["lane", "position"], unique=False
    )
    op.create_index(
        "ix_domain_events_undispatched",
        "domain_events",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("position IS NULL"),
        sqlite_where=sa.text("position IS NULL"),
    )
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.String(length=26), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "lane", name=op.f("pk_event_cursors")),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_index("ix_domain_events_undispatched", table_name="domain_events")
    op.drop_index("ix_domain_events_lane_position", table_name="domain_events")
    op.drop_index(op.f("ix_domain_events_dispatched_at"), table_name="domain_events")
    op.drop_index(op.f("ix_domain_events_workspace_id"), table_name="domain_events")
    op.drop_table("domain_events")
